"""The paper-claims report on synthetic result files: the whole ``main`` (markdown, CSV,
curves), an empty root, malformed files and the archive."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest

from experiments.paper_claims import plan, report, results
from tests.experiments.paper_claims_helpers import LR_MID, full_study, write_run

HAS_MPL = importlib.util.find_spec("matplotlib") is not None


# --------------------------------------------------------------------------- files, main


def test_main_writes_the_report_csv_and_curves(tmp_path, capsys):
    root, out = tmp_path / "runs", tmp_path / "docs"
    full_study(root)
    write_run(root, "sudoku", "wd1", LR_MID, 2, status="error: NaN loss")  # replaces a seed
    path = report.main(["--root", str(root), "--out", str(out)])
    text = path.read_text()
    assert path == out / "results.md"
    for task in plan.TASKS:
        assert f"## {task.capitalize()}" in text
        assert f"results/{task}_curves.png" in text
        assert f"results/{task}_runs.csv" in text
    assert "python -m experiments.paper_claims --datasets" in text
    # Main tables: one row per method and task. Sudoku lacks a run (its errored seed), so it
    # also lists every finished run: BGPO n_t = 16's 3 sweep runs and 2 other seeds.
    assert text.count("The study is not complete") == 1
    assert text.count("| BGPO, n_t = 16 |") == 2 + 5
    assert text.count("| BGPO, n_t = 32 |") == 1 + 5
    assert "Machine: NVIDIA H200." in text
    assert "error: NaN loss" in text and "### Missing (1)" in text and "### Missing (0)" in text
    assert "do not edit by hand" in text
    claim_lines = [
        li for li in text.splitlines() if li.startswith(("- Countdown: **", "- Sudoku:"))
    ]
    assert len(claim_lines) == 5 + 4
    assert sum(li.startswith("- Countdown: **holds**") for li in claim_lines) >= 2  # claims 1, 2
    with (out / "results" / "sudoku_runs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    sudoku_methods = plan.methods_for("sudoku")
    assert len(rows) == len(sudoku_methods) * (len(plan.LEARNING_RATES) + len(plan.SEEDS) - 1)
    assert tuple(rows[0]) == report.CSV_COLUMNS
    assert all(
        row["command"].startswith("python -m experiments.paper_claims.run_one") for row in rows
    )
    if HAS_MPL:
        assert (out / "results" / "sudoku_curves.png").stat().st_size > 0
    capsys.readouterr()


def test_main_with_nothing_to_read_reports_everything_missing(tmp_path):
    path = report.main(["--root", str(tmp_path / "none"), "--out", str(tmp_path / "docs")])
    text = path.read_text()
    assert "No runs yet" in text and "no warmstart.json" in text and "no system.json" in text
    assert text.count("**inconclusive**") == 5 + 4
    assert (tmp_path / "docs" / "results" / "countdown_runs.csv").exists()


def test_a_malformed_result_is_a_one_line_error_naming_the_file(tmp_path):
    folder = write_run(tmp_path, "sudoku", "bgpo_nt1", LR_MID, 0)
    (folder / "result.json").write_text('{"method": "bgpo_nt1",\n "lr": ')
    with pytest.raises(results.ReportError) as error:
        results.load_runs(tmp_path, "sudoku")
    message = str(error.value)
    assert str(folder / "result.json") in message and "\n" not in message
    (folder / "result.json").write_text(json.dumps({"method": "bgpo_nt1"}))
    with pytest.raises(results.ReportError, match="no lr, seed, status"):
        results.load_runs(tmp_path, "sudoku")
    with pytest.raises(SystemExit, match="result.json"):
        report.main(["--root", str(tmp_path), "--out", str(tmp_path / "docs")])


def test_the_archive_reproduces_the_report(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "docs"
    full_study(root)
    (root / "sudoku" / "runs" / "x" / "weights.bin").parent.mkdir(parents=True)
    (root / "sudoku" / "runs" / "x" / "weights.bin").write_bytes(b"0" * 10)
    first = report.main(
        ["--root", str(root), "--out", str(out / "a"), "--archive", str(out / "raw")]
    )
    again = report.main(["--root", str(out / "raw"), "--out", str(out / "b")])
    assert first.read_text() == again.read_text()
    assert not list((out / "raw").rglob("weights.bin"))


def test_the_archive_drops_a_file_the_study_no_longer_has(tmp_path):
    root, raw = tmp_path / "runs", tmp_path / "raw"
    (root / "countdown").mkdir(parents=True)
    progress = root / "countdown" / "warmstart_progress.json"
    progress.write_text(json.dumps({"sft_steps": 10, "parts": [{}]}))
    report.archive(root, raw)
    assert (raw / "countdown" / "warmstart_progress.json").is_file()
    progress.unlink()  # the warm start finished
    (root / "countdown" / "warmstart.json").write_text(json.dumps({"sft_steps": 20}))
    (raw / "countdown" / "notes.txt").write_text("not the report's")
    report.archive(root, raw)
    assert not (raw / "countdown" / "warmstart_progress.json").exists()
    assert (raw / "countdown" / "warmstart.json").is_file()
    assert (raw / "countdown" / "notes.txt").is_file()  # only the report's files are managed


def test_the_recipe_search_is_reported_under_the_warm_start(tmp_path):
    from experiments.paper_claims.recipe_search import VARIANTS

    root, out = tmp_path / "runs", tmp_path / "docs"
    (root / "countdown").mkdir(parents=True)
    recipes = {
        "base": {"overrides": VARIANTS["base"], "params": 11.07e6, "sft_steps": 700,
                 "seconds": 400.0, "history": [{"step": 700, "accuracy": 0.0}]},
        "wide_b256": {"overrides": VARIANTS["wide_b256"], "params": 27.88e6, "sft_steps": 500,
                      "seconds": 410.0, "history": [{"step": 250, "accuracy": 0.02},
                                                    {"step": 500, "accuracy": 0.125}]},
    }  # fmt: skip
    (root / "countdown" / "recipe_search.json").write_text(json.dumps(recipes))
    text = report.main(["--root", str(root), "--out", str(out)]).read_text()
    assert "| base | 11.1M | 384 × 6 | 64 | 0.001 | 500000 | 700 | 400 | 0.0 |" in text
    assert "| wide_b256 | 27.9M | 512 × 8 | 256 | 0.0005 | 500000 | 500 | 410 | 2.0, 12.5 |" in text
    assert text.count("Warm-start recipes tried") == 1  # Sudoku has none


def test_themachine_line_counts_the_machines_runs_recorded():
    from experiments.paper_claims.report import machine_line

    system = {"device": "NVIDIA H200", "concurrent_runs": 14, "mps": True}
    shared = {"device": "NVIDIA H200", "concurrent_runs": 14, "mps": True}
    runs = [{"machine": shared}, {"machine": shared}, {"machine": {"device": "CPU"}}, {}]
    line = machine_line(system, runs)
    assert line.startswith("Machine: NVIDIA H200 (14 runs at a time through CUDA MPS).")
    assert "NVIDIA H200 (14 runs at a time through CUDA MPS): 2 runs; CPU: 1 run" in line
    assert line.endswith("1 earlier run unrecorded.")
    assert (
        machine_line(system, [{}]) == "Machine: NVIDIA H200 (14 runs at a time through CUDA MPS)."
    )


def test_an_unfinished_warm_start_is_reported_with_its_progress(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "docs"
    (root / "countdown").mkdir(parents=True)
    progress = {"sft_steps": 2894, "val_accuracy": 0.0, "threshold": 0.1, "parts": [{}, {}]}
    (root / "countdown" / "warmstart_progress.json").write_text(json.dumps(progress))
    text = report.main(["--root", str(root), "--out", str(out)]).read_text()
    assert "Warm start: unfinished after 2894 SFT steps in 2 time-limited parts" in text
    assert "gave 0.0% against the threshold of 10.0%" in text
    assert "Warm start: missing (no warmstart.json)." in text  # sudoku has neither file


def test_the_sweep_edge_line_names_the_methods_whose_choice_is_at_the_grids_edge():
    low, mid, high = sorted(plan.LEARNING_RATES)
    assert report.sweep_edge_line({"bgpo_nt16": mid, "gdpo": mid}, "sudoku") is None
    line = report.sweep_edge_line({"bgpo_nt16": low, "gdpo": high, "wd1": mid}, "sudoku")
    assert f"grid's smallest ({low:g}) for 1 of 3 methods (BGPO, n_t = 16)" in line
    assert f"grid's largest ({high:g}) for 1 of 3 methods (GDPO)" in line


def test_the_table_marks_the_peaks_that_include_the_gradient_statistics_callback(tmp_path):
    write_run(tmp_path, "sudoku", "bgpo_nt16", LR_MID, 0, peak=2.5, grad_stats_csv="g.csv")
    write_run(tmp_path, "sudoku", "gdpo", LR_MID, 0, peak=2.0)
    runs = results.load_runs(tmp_path, "sudoku")
    table = report.markdown_table(results.method_table(runs, results.chosen_learning_rates(runs)))
    assert "| 2.50* |" in table and "| 2.00 |" in table
    assert "gradient-statistics callback, whose own memory counts in their peak" in table


def test_the_twins_line_compares_bgpo_at_one_sample_with_vrpo_ol_at_one(tmp_path):
    for method, final in (("bgpo_nt1", 0.40), ("vrpo_ol", 0.43)):
        write_run(tmp_path, "sudoku", method, LR_MID, 0, final_test=final)
    write_run(tmp_path, "sudoku", "vrpo_ol", LR_MID, 1)  # no twin: left out
    runs = results.load_runs(tmp_path, "sudoku")
    line = report.twins_line(runs, {"vrpo_ol_n_t": 1})
    assert "Over 1 pair of their runs" in line and "agrees to 1e-6 in 1" in line
    assert "differs by at most 3.0 points" in line
    assert report.twins_line(runs, {"vrpo_ol_n_t": 2}) is None  # not the same gradient
    assert report.twins_line(runs, None) is None


def test_a_finished_warm_start_is_reported_with_its_config_and_command():
    line = report._warm_start_line(
        {"params": 11_100_000, "sft_steps": 300, "val_accuracy": 0.487, "test_accuracy": 0.488,
         "config": "experiments/configs/paper_claims/sudoku_sft.yaml",
         "command": "python -m experiments.paper_claims.warm_start --task sudoku"}
    )  # fmt: skip
    assert line == (
        "Warm start: 11.1M parameters, 300 SFT steps (`experiments/configs/paper_claims/"
        "sudoku_sft.yaml`, `python -m experiments.paper_claims.warm_start --task sudoku`); "
        "val 48.7%, test 48.8%."
    )
