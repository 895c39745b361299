"""Reads HAR files with haralyzer the way its users do, and reports what it cannot read.

Usage: python3 haralyzer-read.py FILE...

For every file: HarParser, its pages (entries without `pageref` form haralyzer's "unknown"
page) and, for every entry, every property of haralyzer's HarEntry, Request and Response
(`entry.response.text`, `entry.request.url`, the header shortcuts, ...). `HarEntry.pageref` is
read only when the entry has one: it is optional in HAR 1.2 and apitool writes no pages.
Exits 1 with one line per failure, 0 when every file reads.
"""

import inspect
import json
import sys

from haralyzer import HarEntry, HarParser


def properties(obj):
    """The names of the (cached) properties of obj's class and its bases."""
    names = []
    for klass in inspect.getmro(type(obj)):
        for name, attr in vars(klass).items():
            if name.startswith("_") or name in names:
                continue
            if isinstance(attr, property) or type(attr).__name__ == "cached_property":
                names.append(name)
    return names


def read(path):
    failures = []
    with open(path, encoding="utf-8") as f:
        har = json.load(f)
    parser = HarParser(har)
    for page in parser.pages:
        list(page.entries)
    for i, raw in enumerate(har["log"]["entries"]):
        entry = HarEntry(raw)
        for obj, what in ((entry, "entry"), (entry.request, "entry.request"), (entry.response, "entry.response")):
            for name in properties(obj):
                if obj is entry and name == "pageref" and "pageref" not in raw:
                    continue
                try:
                    getattr(obj, name)
                except Exception as e:  # noqa: BLE001 - every failure is reported
                    failures.append(f"{path}: entry {i}: {what}.{name}: {type(e).__name__}: {e}")
    return failures


def main():
    failures = []
    for path in sys.argv[1:]:
        try:
            failures.extend(read(path))
        except Exception as e:  # noqa: BLE001
            failures.append(f"{path}: {type(e).__name__}: {e}")
    for f in failures:
        print(f)
    print(f"haralyzer read {len(sys.argv) - 1} HAR files, {len(failures)} failures", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
