"""Example step: aggregate a week of synthetic events, then render a text report."""

import random
import sys

random.seed(7)
if sys.argv[1] == "aggregate":
    events = [random.choice(["login", "export", "run", "edit"]) for _ in range(200_000)]
    for kind in sorted(set(events)):
        print(f"{kind:8} {events.count(kind):7d}")
else:
    print("weekly report: usage steady, exports up 4%")
