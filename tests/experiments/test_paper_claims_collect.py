"""Unpacking a GPU session's files: results in place, warm starts joined and verified."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from experiments.paper_claims.collect import collect
from experiments.paper_claims.warm_start import weights_sha256


def _pack(
    out, device_root, weights: bytes, recorded_hash: str | None = None, record="warmstart.json"
):
    """What gpu_session.sh writes: results.tgz with repo-relative names, the warm start
    as a tar split in parts."""
    warm = device_root / "sudoku" / "warmstart"
    warm.mkdir(parents=True)
    (warm / "model.safetensors").write_bytes(weights)
    (warm / "config.json").write_text("{}")
    summary = {"weights_sha256": recorded_hash or weights_sha256(warm)}
    (device_root / "sudoku" / record).write_text(json.dumps(summary))
    run = device_root / "sudoku" / "runs" / "bgpo_nt1__lr0.0001__seed0"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"status": "ok"}))
    out.mkdir()
    with tarfile.open(out / "results.tgz", "w:gz") as archive:
        for path in (device_root / "sudoku" / record, run / "result.json"):
            archive.add(path, arcname=f"runs/paper_claims/{path.relative_to(device_root)}")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:") as archive:
        archive.add(warm, arcname="warmstart")
    data = buffer.getvalue()
    half = len(data) // 2
    (out / "warmstart_sudoku.tar.partaa").write_bytes(data[:half])
    (out / "warmstart_sudoku.tar.partab").write_bytes(data[half:])


def test_results_and_warm_start_land_under_the_root(tmp_path):
    weights = bytes(range(256)) * 300
    _pack(tmp_path / "out", tmp_path / "device", weights)
    root = tmp_path / "study"
    outcome = collect(tmp_path / "out", root)
    assert outcome == {"files": 2, "warm_starts": ["sudoku"]}
    result = root / "sudoku" / "runs" / "bgpo_nt1__lr0.0001__seed0" / "result.json"
    assert json.loads(result.read_text()) == {"status": "ok"}
    assert (root / "sudoku" / "warmstart" / "model.safetensors").read_bytes() == weights


def test_an_unfinished_warm_start_is_checked_against_its_progress_file(tmp_path):
    record = "warmstart_progress.json"
    _pack(tmp_path / "out", tmp_path / "device", b"part one", record=record)
    assert collect(tmp_path / "out", tmp_path / "study")["warm_starts"] == ["sudoku"]
    _pack(tmp_path / "out2", tmp_path / "device2", b"part", "0" * 64, record=record)
    with pytest.raises(SystemExit, match="warmstart_progress.json"):
        collect(tmp_path / "out2", tmp_path / "study2")


def test_a_warm_start_with_other_weights_is_refused(tmp_path):
    _pack(tmp_path / "out", tmp_path / "device", b"weights", recorded_hash="0" * 64)
    with pytest.raises(SystemExit, match="differs from"):
        collect(tmp_path / "out", tmp_path / "study")


def test_a_member_outside_the_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with tarfile.open(out / "results.tgz", "w:gz") as archive:
        info = tarfile.TarInfo("runs/paper_claims/../../escaped.json")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(SystemExit, match="outside the folder"):
        collect(out, tmp_path / "study")
    assert not (tmp_path / "escaped.json").exists()
