"""Example step: 'download' invoices (generated locally, no network) and file them."""

import hashlib
import os
import sys
import time

SUPPLIERS = ["acme", "globex", "initech", "umbrella", "hooli"]


def invoices():
    day = time.strftime("%Y-%m-%d")
    for n, supplier in enumerate(SUPPLIERS * 3):
        digest = hashlib.sha256(f"{day}-{n}".encode()).hexdigest()
        yield supplier, f"INV-{digest[:8]}", round(int(digest[8:14], 16) / 1000, 2)


if sys.argv[1] == "fetch":
    for supplier, number, amount in invoices():
        print(f"fetched {number} from {supplier}: {amount:.2f}")
        time.sleep(0.02)
else:
    totals = {}
    for supplier, _number, amount in invoices():
        totals[supplier] = totals.get(supplier, 0) + amount
    currency = os.environ.get("INVOICE_CURRENCY", "USD")
    for supplier, total in sorted(totals.items()):
        print(f"{supplier:10} {total:10.2f} {currency}")
