"""The study's figures: drawn from the result files, or a reason why not."""

from __future__ import annotations

import pytest

from experiments.paper_claims import figures, plan, report, results
from tests.experiments.paper_claims_helpers import LR_HIGH, LR_LOW, write_run

pytest.importorskip("matplotlib")


def test_the_sweep_figure_draws_every_first_seed_run(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "sudoku", "gdpo", LR_LOW, plan.SWEEP_SEED)
    write_run(root, "sudoku", "wd1", LR_HIGH * 3, plan.SWEEP_SEED)  # off the grid: dotted
    write_run(root, "sudoku", "wd1", LR_LOW, plan.SWEEP_SEED + 1)  # not a sweep run
    path = tmp_path / "sweep.png"
    assert figures.plot_sweep(results.load_runs(root, "sudoku"), "sudoku", path) is None
    assert path.read_bytes().startswith(b"\x89PNG")
    note = figures.plot_sweep([], "sudoku", tmp_path / "none.png")
    assert note == "no finished sweep runs to plot" and not (tmp_path / "none.png").exists()


def test_a_figure_no_longer_drawn_is_removed(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "docs"
    write_run(root, "sudoku", "gdpo", LR_LOW, plan.SWEEP_SEED)
    report.main(["--root", str(root), "--out", str(out)])
    assert (out / "results" / "sudoku_sweep.png").is_file()
    assert "results/sudoku_sweep.png" in (out / "results.md").read_text()
    (
        root / "sudoku" / "runs" / plan.RunKey("sudoku", "gdpo", LR_LOW, 0).name / "result.json"
    ).unlink()
    report.main(["--root", str(root), "--out", str(out)])
    assert not (out / "results" / "sudoku_sweep.png").exists()
    assert "sudoku_sweep.png" not in (out / "results.md").read_text()
