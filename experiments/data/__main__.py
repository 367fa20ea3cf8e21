"""Command line of :mod:`experiments.data` (``python -m experiments.data --help``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import experiments.data
from experiments.data.catalog import DATASETS, SPLITS, SplitSpec
from experiments.data.hub import FetchError, load_rows
from experiments.data.jsonl import write_jsonl
from experiments.data.rows import MalformedRow, convert_rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m experiments.data",
        description=experiments.data.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, default=Path("data"), help="output folder (default: data)")
    p.add_argument(
        "--only", nargs="+", choices=DATASETS, metavar="NAME", help=f"of: {', '.join(DATASETS)}"
    )
    p.add_argument("--force", action="store_true", help="rewrite files that already exist")
    return p.parse_args(argv)


def export(spec: SplitSpec, out: Path) -> int:
    """Downloads, converts and writes one file; returns its row count."""
    table = load_rows(spec.source, spec.dataset)
    rows = convert_rows(table, spec.convert, spec.label, spec.limit)
    return write_jsonl(out / spec.relpath, rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for spec in SPLITS:
        if args.only and spec.dataset not in args.only:
            continue
        path = args.out / spec.relpath
        # Files only ever appear complete (write_jsonl renames), so existing means done.
        if path.exists() and not args.force:
            print(f"kept {path} (exists; --force rewrites it)")
            continue
        try:
            count = export(spec, args.out)
        except FetchError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except MalformedRow as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"wrote {path}: {count} rows", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
