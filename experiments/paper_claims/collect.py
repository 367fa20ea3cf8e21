"""Brings what a GPU session packed (``gpu_session.sh``) back into the study's folder.

    python -m experiments.paper_claims.collect OUT [--root runs/paper_claims]

``OUT/results.tgz`` holds the small files under ``runs/paper_claims/``; they land under
``--root`` with the same layout. ``OUT/warmstart_<task>.tar.part*`` are a warm start split
in parts; it is put together under ``<root>/<task>/warmstart`` and its weights checked
against the SHA-256 that its ``warmstart.json`` (or, unfinished, its progress file) recorded.
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path, PurePosixPath

from experiments.paper_claims.entry import ROOT
from experiments.paper_claims.plan import TASKS
from experiments.paper_claims.results import read_json
from experiments.paper_claims.warm_start import warm_start_dir, warm_start_record, weights_sha256

PACKED_ROOT = PurePosixPath("runs/paper_claims")


def _safe_relative(name: str, base: PurePosixPath | None) -> PurePosixPath:
    path = PurePosixPath(name)
    if base is not None:
        if path.parts[: len(base.parts)] != base.parts:
            raise SystemExit(f"error: refusing to unpack {name!r}: it is not under {base}")
        path = PurePosixPath(*path.parts[len(base.parts) :])
    if path.is_absolute() or ".." in path.parts:
        raise SystemExit(f"error: refusing to unpack {name!r}: it points outside the folder")
    return path


def _extract(archive: tarfile.TarFile, dest: Path, base: PurePosixPath | None) -> list[Path]:
    written = []
    for member in archive.getmembers():
        if not member.isfile():
            continue
        target = dest / _safe_relative(member.name, base)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.extractfile(member).read())
        written.append(target)
    return written


def collect(out: Path, root: Path = ROOT) -> dict:
    """Unpacks ``out`` into ``root``; returns how many files and which warm starts came."""
    results = out / "results.tgz"
    files = []
    if results.is_file():
        with tarfile.open(results, "r:gz") as archive:
            files = _extract(archive, root, PACKED_ROOT)
    warm_starts = []
    for task in TASKS:
        parts = sorted(out.glob(f"warmstart_{task}.tar.part*"))
        if not parts:
            continue
        joined = io.BytesIO(b"".join(p.read_bytes() for p in parts))
        with tarfile.open(fileobj=joined, mode="r:") as archive:
            _extract(archive, root / task, None)
        record = warm_start_record(root, task)  # an unfinished one has its progress file
        summary = read_json(record) or {}
        expected = summary.get("weights_sha256")
        found = weights_sha256(warm_start_dir(root, task))
        if expected != found:
            raise SystemExit(
                f"error: {warm_start_dir(root, task)}: weights SHA-256 {found[:12]}... differs "
                f"from {expected!r} in {record}"
            )
        warm_starts.append(task)
    print(f"collected {len(files)} files and warm starts {warm_starts} into {root}", flush=True)
    return {"files": len(files), "warm_starts": warm_starts}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("out", type=Path, help="the folder gpu_session.sh packed into")
    p.add_argument("--root", type=Path, default=ROOT)
    args = p.parse_args(argv)
    collect(args.out, args.root)


if __name__ == "__main__":
    main()
