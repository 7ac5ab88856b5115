#!/usr/bin/python3
"""Zips a directory's contents (paths relative to it) into a file: zip-dir.py DIR OUT.zip.

Used instead of the `zip` program so the scripts need nothing beyond python3."""
import os
import sys
import zipfile

src, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            path = os.path.join(root, f)
            z.write(path, os.path.relpath(path, src))
