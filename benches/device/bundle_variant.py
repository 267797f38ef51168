#!/usr/bin/env python3
"""Makes an edited copy of a compiled Kiln bundle for a device experiment: the copy's kernel
WGSL is changed by regular-expression edits and the manifest's sha256 of each edited file is
updated, so `kiln bench --profile` runs the edited kernels in the model. Weights are hard-linked,
not copied. Only for measuring what a kernel change would be worth before writing it in the
code generator; edited bundles are never shipped.

    bundle_variant.py SRC DST FILE 'REGEX' 'REPLACEMENT' [FILE 'REGEX' 'REPLACEMENT' ...]

FILE is a kernel file name (`k007_gemm.wgsl`). Each edit must match at least once, or the
script fails: an experiment that changed nothing must not be reported as one.
"""
import hashlib
import json
import os
import re
import shutil
import sys


def main():
    src, dst, edits = sys.argv[1], sys.argv[2], sys.argv[3:]
    if len(edits) % 3:
        sys.exit("edits come in threes: FILE REGEX REPLACEMENT")
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, copy_function=os.link)
    manifest_path = os.path.join(dst, "manifest.json")
    manifest = json.load(open(manifest_path))
    for i in range(0, len(edits), 3):
        name, pattern, replacement = edits[i : i + 3]
        rel = f"kernels/{name}"
        path = os.path.join(dst, rel)
        text = open(path).read()
        new, count = re.subn(pattern, replacement, text, flags=re.S)
        if count == 0:
            sys.exit(f"{name}: the edit {pattern!r} matched nothing")
        os.unlink(path)  # a hard link to the source bundle's file: replace, do not write through
        open(path, "w").write(new)
        manifest["files"][rel] = hashlib.sha256(new.encode()).hexdigest()
        print(f"{dst}: {name}: {count} edit(s) of {pattern!r}")
    os.unlink(manifest_path)
    json.dump(manifest, open(manifest_path, "w"), indent=1)


if __name__ == "__main__":
    main()
