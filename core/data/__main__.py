"""Command line: `python -m core.data fetch [NAME...] [--hf]` fills the data cache; `python -m core.data info [NAME...]`.

fetch is idempotent: files already present and verified are left untouched. Exit status 1 if any set failed.
"""
from __future__ import annotations

import argparse
import sys
import time

from . import NAMES, cache_dir, fetch, info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.data")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="fetch/verify real files and make generated sets (all sets if none named)")
    f.add_argument("names", nargs="*", metavar="NAME", help=", ".join(NAMES))
    f.add_argument("--hf", action="store_true", help="also fetch the original online poetry set (merve/poetry)")
    i = sub.add_parser("info", help="print source, checksums and counts")
    i.add_argument("names", nargs="*", metavar="NAME")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        ap.error(f"unknown data set(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    if args.cmd == "info":
        for n in args.names or NAMES:
            print(info(n))
        return 0
    t0 = time.time()
    print(f"data cache: {cache_dir()}")
    names = args.names or list(NAMES)
    if args.hf and "poetry" not in names:
        names.append("poetry")
    results = fetch(names, log=lambda s: print(s, flush=True), hf_poetry=args.hf)
    failed = [n for n, r in results.items() if r.startswith("FAILED")]
    print(f"done in {time.time() - t0:.1f}s: {len(results) - len(failed)} ready" + (f", FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
