"""Example step: mirror files between two temporary directories."""

import os
import shutil
import tempfile

with tempfile.TemporaryDirectory() as inbox, tempfile.TemporaryDirectory() as archive:
    for n in range(50):
        with open(os.path.join(inbox, f"msg-{n}.txt"), "w") as f:
            f.write(f"message {n}\n" * 20)
    copied = 0
    for name in os.listdir(inbox):
        shutil.copy2(os.path.join(inbox, name), archive)
        copied += 1
    print(f"synced {copied} files")
