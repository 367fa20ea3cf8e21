"""A run's scratch folder: what is kept for a resume, what a fresh start clears, and the
gradient statistics of a run's parts joined in order."""

from __future__ import annotations

import json

import pytest

from experiments.paper_claims import resume
from experiments.paper_claims.plan import RunKey

KEY = RunKey("sudoku", "bgpo_nt16", 3e-5, 1)


def _checkpoint(scratch, sha: str) -> None:
    folder = resume.checkpoint_dir(scratch)
    folder.mkdir(parents=True)
    (folder / resume.CHECKPOINT).write_bytes(b"weights")
    record = {"warm_start_sha256": sha, "wall_s": 12.5, "resumed_at": [], "batches": 7}
    (folder / resume.PROGRESS).write_text(json.dumps(record))


def test_scratch_is_the_result_folder_unless_the_variable_is_set(tmp_path, monkeypatch):
    root = tmp_path / "study"
    run = root / "sudoku" / "runs" / KEY.name
    probe = root / "sudoku" / "probe" / "bgpo_nt16_nt16"  # the same method, lr and seed
    monkeypatch.delenv(resume.SCRATCH_VARIABLE, raising=False)
    assert resume.scratch_dir(run, root) == run
    monkeypatch.setenv(resume.SCRATCH_VARIABLE, str(tmp_path / "scratch"))
    assert resume.scratch_dir(run, root) == tmp_path / "scratch" / "sudoku" / "runs" / KEY.name
    assert resume.scratch_dir(probe, root) == tmp_path / "scratch" / "sudoku" / "probe" / probe.name
    with pytest.raises(ValueError, match="not under the study's root"):
        resume.scratch_dir(tmp_path / "elsewhere", root)


def test_a_checkpoint_from_the_same_warm_start_is_kept(tmp_path):
    _checkpoint(tmp_path, "abc")
    checkpoint, progress = resume.prepare_scratch(tmp_path, "abc")
    assert checkpoint == resume.checkpoint_dir(tmp_path) / resume.CHECKPOINT
    assert progress["batches"] == 7 and progress["wall_s"] == 12.5


def test_a_checkpoint_from_another_warm_start_is_cleared(tmp_path):
    _checkpoint(tmp_path, "abc")
    (tmp_path / "stale.log").write_text("left by a run killed before its first checkpoint")
    checkpoint, progress = resume.prepare_scratch(tmp_path, "other")
    assert checkpoint is None and progress["warm_start_sha256"] == "other"
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_without_its_progress_record_is_not_resumed(tmp_path):
    _checkpoint(tmp_path, "abc")
    (resume.checkpoint_dir(tmp_path) / resume.PROGRESS).unlink()
    assert resume.prepare_scratch(tmp_path, "abc")[0] is None


def test_the_parts_gradient_statistics_are_joined_in_version_order(tmp_path):
    for version, step in ((10, 40), (2, 20)):  # version_10 sorts after version_2
        folder = tmp_path / "lightning_logs" / f"version_{version}"
        folder.mkdir(parents=True)
        (folder / "gradient_statistics.csv").write_text(f"step,bias\n{step},0.5\n")
    target = tmp_path / "gradient_statistics.csv"
    assert resume.merged_gradient_statistics(tmp_path, target)
    assert target.read_text() == "step,bias\n20,0.5\n40,0.5\n"
    assert resume.merged_gradient_statistics(tmp_path, target)  # the target is not an input
    assert target.read_text() == "step,bias\n20,0.5\n40,0.5\n"
    assert not resume.merged_gradient_statistics(tmp_path / "lightning_logs" / "none", target)
