"""The paper-claims report on synthetic result files: lr choice, summaries, table, verdicts,
missing runs, the whole ``main`` and malformed files."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import statistics

import pytest

from experiments.paper_claims import plan
from experiments.paper_claims import report as rp

HAS_MPL = importlib.util.find_spec("matplotlib") is not None
LR_LOW, LR_MID, LR_HIGH = plan.LEARNING_RATES


def write_run(
    root,
    task,
    method,
    lr,
    seed,
    *,
    final_test=0.4,
    final_val=None,
    curve=None,
    status="ok",
    warm=(0.30, 0.28),
    peak=2.0,
    step=1.0,
    grad_stats_csv=None,
):
    """A result.json as the runner writes it; returns the run folder."""
    final_val = final_test if final_val is None else final_val
    if curve is None:
        curve = [
            {"batch": 0, "val": warm[0], "test": warm[1]},
            {"batch": 10, "val": (warm[0] + final_val) / 2, "test": (warm[1] + final_test) / 2},
            {"batch": 20, "val": final_val, "test": final_test},
        ]
    key = plan.RunKey(task, method, lr, seed)
    folder = root / task / "runs" / key.name
    folder.mkdir(parents=True, exist_ok=True)
    result = {
        "task": task,
        "method": method,
        "label": rp._label(method),
        "lr": lr,
        "seed": seed,
        "phase": "sweep" if seed == plan.SWEEP_SEED else "seeds",
        "settings": {},
        "rollout_batches": 20,
        "status": status,
        "curve": curve,
        "train_reward": [0.3, 0.4],
        "peak_memory_gib": peak,
        "step_s": step,
        "rollout_s": step / 4,
        "likelihood_s": 3 * step / 4,
        "wall_s": 20 * step,
        "command": f"python -m experiments.paper_claims.run_one --task {task} --method {method} "
        f"--lr {lr:g} --seed {seed}",
        "grad_stats_csv": grad_stats_csv,
    }
    (folder / "result.json").write_text(json.dumps(result))
    return folder


def seeds_of(root, task, method, finals, lr=LR_MID, **kwargs):
    """Runs at ``lr``, one per final test accuracy, seeds 0, 1, ..."""
    for seed, final in enumerate(finals):
        write_run(root, task, method, lr, seed, final_test=final, **kwargs)


def loaded(root, task="sudoku"):
    runs = rp.load_runs(root, task)
    return runs, rp.chosen_learning_rates(runs)


# --------------------------------------------------------------------------- lr, points


def test_chosen_lr_takes_the_best_final_val_ties_to_the_smaller_and_skips_errors(tmp_path):
    task = "sudoku"
    write_run(tmp_path, task, "bgpo_nt1", LR_LOW, 0, final_val=0.40)
    write_run(tmp_path, task, "bgpo_nt1", LR_MID, 0, final_val=0.50)
    write_run(tmp_path, task, "bgpo_nt1", LR_HIGH, 0, final_val=0.90, status="error: NaN loss")
    write_run(tmp_path, task, "bgpo_nt1", LR_HIGH, 1, final_val=0.95)  # not a sweep seed
    write_run(tmp_path, task, "bgpo_nt4", LR_MID, 0, final_val=0.50)
    write_run(tmp_path, task, "bgpo_nt4", LR_HIGH, 0, final_val=0.50)
    # the highest val mid-curve does not count: the last point does
    peak_early = [{"batch": 0, "val": 0.9, "test": 0.9}, {"batch": 10, "val": 0.1, "test": 0.1}]
    write_run(tmp_path, task, "diffu_grpo", LR_LOW, 0, curve=peak_early)
    write_run(tmp_path, task, "diffu_grpo", LR_MID, 0, final_val=0.2)
    write_run(tmp_path, task, "vrpo_ol", LR_LOW, 0, status="error: OOM")
    _, chosen = loaded(tmp_path)
    assert chosen == {"bgpo_nt1": LR_MID, "bgpo_nt4": LR_MID, "diffu_grpo": LR_MID}


def test_final_is_the_last_point_and_best_the_earliest_highest_val():
    curve = [
        {"batch": 0, "val": 0.3, "test": 0.31},
        {"batch": 10, "val": 0.5, "test": 0.42},
        {"batch": 20, "val": 0.5, "test": 0.47},
        {"batch": 30, "val": 0.4, "test": 0.45},
    ]
    run = {"method": "bgpo_nt1", "lr": LR_MID, "seed": 0, "status": "ok", "curve": curve}
    assert rp.final_point(run) == curve[3]
    assert rp.best_point(run) == curve[1]
    assert rp.warm_point(run) == curve[0]
    empty = {**run, "curve": []}
    assert rp.final_point(empty) is None and rp.best_point(empty) is None


# --------------------------------------------------------------------------- table


def test_method_table_means_stds_and_missing_counts(tmp_path):
    task = "countdown"
    finals = [0.40, 0.46, 0.55]
    bests = [0.41, 0.50, 0.52]  # test at the highest-val point, which is mid-run
    for seed, (final, best) in enumerate(zip(finals, bests, strict=True)):
        curve = [
            {"batch": 0, "val": 0.3, "test": 0.28},
            {"batch": 10, "val": 0.9, "test": best},
            {"batch": 20, "val": 0.6, "test": final},
        ]
        write_run(
            tmp_path, task, "bgpo_nt16", LR_MID, seed, curve=curve, peak=2.0 + seed, step=1 + seed
        )
    write_run(tmp_path, task, "bgpo_nt16", LR_LOW, 0, final_val=0.1)
    write_run(tmp_path, task, "diffu_grpo", LR_LOW, 0, final_test=0.33)
    runs, chosen = loaded(tmp_path, task)
    rows = {row["method"]: row for row in rp.method_table(runs, chosen, task)}
    assert [row["method"] for row in rp.method_table(runs, chosen, task)] == [
        m.key for m in plan.methods_for(task)
    ]

    ours = rows["bgpo_nt16"]
    mean = sum(finals) / 3
    std = math.sqrt(sum((f - mean) ** 2 for f in finals) / 2)
    best_mean = sum(bests) / 3
    best_std = math.sqrt(sum((b - best_mean) ** 2 for b in bests) / 2)
    assert ours["lr"] == LR_MID and ours["n"] == 3
    assert ours["final_mean"] == pytest.approx(mean) and ours["final_std"] == pytest.approx(std)
    assert ours["best_mean"] == pytest.approx(best_mean)
    assert ours["best_std"] == pytest.approx(best_std)
    assert ours["warm_test"] == pytest.approx(0.28)
    assert ours["peak_gib"] == pytest.approx(3.0) and ours["step_s"] == pytest.approx(2.0)
    assert ours["rollout_s"] == pytest.approx(0.5) and ours["likelihood_s"] == pytest.approx(1.5)
    assert ours["missing"] == 1  # the lr-3e-4 sweep run

    baseline = rows["diffu_grpo"]
    assert baseline["n"] == 1 and baseline["final_std"] is None
    assert baseline["missing"] == 2 + 2  # two sweep lrs, two seeds at the chosen lr
    assert rows["vrpo_ol"]["n"] == 0 and rows["vrpo_ol"]["lr"] is None
    assert rows["vrpo_ol"]["missing"] == 3  # the sweep; its seeds are not planned yet

    table = rp.markdown_table(list(rows.values()))
    line = next(li for li in table.splitlines() if li.startswith("| BGPO, n_t = 16 |"))
    assert f"{100 * mean:.1f} ± {100 * std:.1f}" in line
    assert f"{100 * best_mean:.1f} ± {100 * best_std:.1f}" in line
    assert "| 2.00 (0.50 + 1.50) |" in line
    assert "(2/3 lrs)" in line
    assert "| 33.0 ± – |" in next(li for li in table.splitlines() if "| diffu-GRPO |" in li)


def test_missing_runs_lists_planned_runs_and_errors(tmp_path):
    task = "countdown"
    for lr in plan.LEARNING_RATES:
        write_run(tmp_path, task, "wd1", lr, 0, final_val=0.5 if lr == LR_HIGH else 0.2)
    write_run(tmp_path, task, "wd1", LR_HIGH, 1, status="error: CUDA out of memory")
    write_run(tmp_path, task, "wd1", LR_LOW, 2, status="error: killed")  # outside the plan
    runs, chosen = loaded(tmp_path, task)
    missing = {m["name"]: m["reason"] for m in rp.missing_runs(runs, chosen, task)}
    name = lambda lr, seed: plan.RunKey(task, "wd1", lr, seed).name  # noqa: E731
    assert missing[name(LR_HIGH, 1)] == "error: CUDA out of memory"
    assert missing[name(LR_HIGH, 2)] == "no result"
    assert missing[name(LR_LOW, 2)] == "error: killed"
    assert name(LR_MID, 0) not in missing
    others = [m for m in plan.methods_for(task) if m.key != "wd1"]
    assert len(missing) == 3 + 3 * len(others)
    row = next(r for r in rp.method_table(runs, chosen, task) if r["method"] == "wd1")
    assert row["missing"] == 2  # planned only


# --------------------------------------------------------------------------- claims


@pytest.mark.parametrize(
    ("ours", "grpo", "vrpo", "verdict"),
    [
        ([0.60, 0.62, 0.64], [0.40, 0.42, 0.44], [0.50, 0.51, 0.52], rp.HOLDS),
        ([0.60, 0.62, 0.64], [0.40, 0.42, 0.44], [0.70, 0.72, 0.74], rp.FAILS),
        ([0.60, 0.62, 0.64], [0.40, 0.42, 0.44], [0.50, 0.62, 0.74], rp.INCONCLUSIVE),
        ([0.60], [0.40, 0.42, 0.44], [0.50, 0.51, 0.52], rp.INCONCLUSIVE),
        ([0.60, 0.62, 0.64], [0.40, 0.42, 0.44], [0.50], rp.INCONCLUSIVE),
    ],
)
def test_claim_1_verdicts(tmp_path, ours, grpo, vrpo, verdict):
    seeds_of(tmp_path, "sudoku", "bgpo_nt16", ours)
    seeds_of(tmp_path, "sudoku", "diffu_grpo", grpo)
    seeds_of(tmp_path, "sudoku", "vrpo_ol", vrpo)
    got, sentence = rp.claim_beats_baselines(*loaded(tmp_path))
    assert got == verdict
    mean = statistics.fmean(ours)
    assert f"{100 * mean:.1f}" in sentence and "diffu-GRPO" in sentence and "\n" not in sentence
    if min(len(ours), len(vrpo)) < 2:
        assert "at least 2 seeds" in sentence


@pytest.mark.parametrize(
    ("by_n_t", "verdict"),
    [
        ({1: [0.30, 0.31, 0.29], 4: [0.40, 0.41, 0.39], 16: [0.50, 0.52, 0.49]}, rp.HOLDS),
        ({1: [0.50, 0.51, 0.49], 4: [0.40, 0.41, 0.39], 16: [0.30, 0.32, 0.29]}, rp.FAILS),
        ({1: [0.30, 0.50, 0.40], 4: [0.50, 0.30, 0.40], 16: [0.35, 0.45, 0.40]}, rp.INCONCLUSIVE),
        ({1: [0.30], 16: [0.50]}, rp.INCONCLUSIVE),
    ],
)
def test_claim_2_verdicts(tmp_path, by_n_t, verdict):
    for n_t, finals in by_n_t.items():
        seeds_of(tmp_path, "sudoku", f"bgpo_nt{n_t}", finals)
    seeds_of(tmp_path, "sudoku", "bgpo_sdmc", [0.9, 0.9, 0.9])  # not an n_t row
    got, sentence = rp.claim_accuracy_rises_with_n_t(*loaded(tmp_path))
    assert got == verdict
    if verdict != rp.INCONCLUSIVE:
        x = [math.log2(n) for n, fs in by_n_t.items() for _ in fs]
        y = [f for fs in by_n_t.values() for f in fs]
        mx, my = statistics.fmean(x), statistics.fmean(y)
        slope = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / sum(
            (a - mx) ** 2 for a in x
        )
        assert f"{100 * slope:+.1f} points per doubling" in sentence
    if len(by_n_t[1]) == 1:
        assert "Too few" in sentence


def write_grad_csv(folder, steps):
    """A gradient-statistics CSV in the callback's layout: steps maps step -> {n_t: (std, bias)}."""
    from bgpo_lightning.callbacks.gradient_report import append_csv

    rows = []
    for step, by_n_t in steps.items():
        for n_t, (std, bias) in by_n_t.items():
            for objective, scale in (("bgpo", 1.0), ("vrpo_ol", 9.0)):  # only bgpo counts
                rows.append(
                    {
                        "step": step,
                        "objective": objective,
                        "n_t": n_t,
                        "repeats": 4,
                        "mean_std": std * scale,
                        "bias": bias / scale,
                        "cosine": 0.5,
                        "golden_n_t": 64,
                        "num_params": 1000,
                        "seconds": 0.1,
                        "cosine_of_mean": 0.9,
                    }
                )
    append_csv(folder / "gradient_statistics.csv", rows)


FALLING = {1: (1.0, 0.8), 4: (0.5, 0.4), 16: (0.25, 0.2)}
RISING = {1: (0.25, 0.2), 4: (0.5, 0.4), 16: (1.0, 0.8)}


@pytest.mark.parametrize(
    ("steps", "verdict"),
    [
        ({10: FALLING, 20: FALLING}, rp.HOLDS),
        ({10: RISING, 20: RISING, 30: FALLING}, rp.FAILS),
        ({10: FALLING, 20: FALLING, 30: RISING}, rp.INCONCLUSIVE),
    ],
)
def test_claim_3_verdicts_from_the_csv(tmp_path, steps, verdict):
    folder = write_run(
        tmp_path, "sudoku", "bgpo_nt16", LR_MID, 0, grad_stats_csv="gradient_statistics.csv"
    )
    write_grad_csv(folder, steps)
    write_run(tmp_path, "sudoku", "bgpo_nt1", LR_MID, 0, grad_stats_csv="absent.csv")
    got, sentence = rp.claim_gradient_noise_falls(loaded(tmp_path)[0])
    assert got == verdict
    falls = sum(1 for s in steps.values() if s is FALLING)
    assert f"In {falls} of {len(steps)} measurements (1 run)" in sentence
    assert "n_t = 16 vs 1" in sentence
    if verdict == rp.HOLDS:
        assert "std 0.25, bias 0.25" in sentence


def test_claim_3_without_statistics_is_inconclusive(tmp_path):
    write_run(tmp_path, "sudoku", "bgpo_nt16", LR_MID, 0)
    assert rp.claim_gradient_noise_falls(loaded(tmp_path)[0])[0] == rp.INCONCLUSIVE


@pytest.mark.parametrize(
    ("peak_16", "verdict"), [(2.1, rp.HOLDS), (3.0, rp.FAILS), (None, rp.INCONCLUSIVE)]
)
def test_claim_4_verdicts(tmp_path, peak_16, verdict):
    seeds_of(tmp_path, "sudoku", "bgpo_nt1", [0.3, 0.3], peak=2.0, step=1.0)
    seeds_of(tmp_path, "sudoku", "bgpo_nt16", [0.3, 0.3], peak=peak_16, step=1.5)
    probe = {"bgpo_nt16_peak_gib": 2.1, "vrpo_ol_peak_gib": {"1": 2.0, "2": 3.9}, "vrpo_ol_n_t": 1}
    got, sentence = rp.claim_memory_flat(loaded(tmp_path)[0], probe, {"concurrent_runs": 4})
    assert got == verdict
    assert "3.9 GiB at n_t = 2" in sentence and "VRPO-OL ran at n_t = 1" in sentence
    if peak_16 is not None:
        assert f"{peak_16 / 2.0:.2f}× that at n_t = 1" in sentence
        assert "1.50× the time per rollout batch" in sentence


@pytest.mark.parametrize(
    ("finals", "warm", "verdict"),
    [
        ([0.50, 0.52, 0.54], 0.20, rp.HOLDS),
        ([0.22, 0.25, 0.23], 0.20, rp.FAILS),  # a clear gain, far from doubling
        ([0.19, 0.21, 0.22], 0.20, rp.FAILS),  # no clear gain
        ([], 0.20, rp.INCONCLUSIVE),
    ],
)
def test_claim_5_verdicts(tmp_path, finals, warm, verdict):
    seeds_of(tmp_path, "countdown", "bgpo_nt16", finals, warm=(warm, warm))
    seeds_of(tmp_path, "countdown", "diffu_grpo", [0.21, 0.21], warm=(warm, warm))
    runs, chosen = loaded(tmp_path, "countdown")
    got, sentence = rp.claim_countdown_gain(runs, chosen, {"params": 11_000_000})
    assert got == verdict
    assert "11M-parameter model says nothing direct about LLaDA-8B" in sentence
    assert "the paper's 87.5 against the re-run's 10.0" in sentence
    if finals:
        gains = [f - warm for f in finals]
        mean, std = statistics.fmean(gains), statistics.stdev(gains)
        assert f"{100 * mean:+.1f} ± {100 * std:.1f} points" in sentence
        assert f"warm start scores {100 * warm:.1f}%" in sentence
        assert ("a large gain from RL" in sentence) == (verdict == rp.HOLDS)
        top = "BGPO, n_t = 16" if statistics.fmean(finals) > 0.21 else "diffu-GRPO"
        assert f"the best method, {top}, ends at" in sentence


# --------------------------------------------------------------------------- files, main


def full_study(root):
    """Every planned run of both tasks, BGPO ahead of the baselines and rising in n_t."""
    for task in plan.TASKS:
        for index, method in enumerate(plan.methods_for(task)):
            n_t = rp.bgpo_n_t(method.key)
            base = 0.30 + 0.02 * math.log2(n_t) if n_t else 0.25 + 0.005 * index
            for lr in plan.LEARNING_RATES:
                bump = 0.01 if lr == LR_MID else 0.0
                write_run(root, task, method.key, lr, 0, final_test=base + bump, peak=2.0)
            for seed in plan.SEEDS[1:]:
                write_run(root, task, method.key, LR_MID, seed, final_test=base + 0.002 * seed)
        (root / task / "system.json").write_text(
            json.dumps({"device": "NVIDIA H200", "rollout_batches": 20, "group_size": 8})
        )
        (root / task / "warmstart.json").write_text(
            json.dumps({"params": 11_000_000, "sft_steps": 800, "test_accuracy": 0.28})
        )


def test_main_writes_the_report_csv_and_curves(tmp_path, capsys):
    root, out = tmp_path / "runs", tmp_path / "docs"
    full_study(root)
    write_run(root, "sudoku", "wd1", LR_MID, 2, status="error: NaN loss")  # replaces a seed
    path = rp.main(["--root", str(root), "--out", str(out)])
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
    assert tuple(rows[0]) == rp.CSV_COLUMNS
    assert all(
        row["command"].startswith("python -m experiments.paper_claims.run_one") for row in rows
    )
    if HAS_MPL:
        assert (out / "results" / "sudoku_curves.png").stat().st_size > 0
    capsys.readouterr()


def test_main_with_nothing_to_read_reports_everything_missing(tmp_path):
    path = rp.main(["--root", str(tmp_path / "none"), "--out", str(tmp_path / "docs")])
    text = path.read_text()
    assert "No runs yet" in text and "no warmstart.json" in text and "no system.json" in text
    assert text.count("**inconclusive**") == 5 + 4
    assert (tmp_path / "docs" / "results" / "countdown_runs.csv").exists()


def test_a_malformed_result_is_a_one_line_error_naming_the_file(tmp_path):
    folder = write_run(tmp_path, "sudoku", "bgpo_nt1", LR_MID, 0)
    (folder / "result.json").write_text('{"method": "bgpo_nt1",\n "lr": ')
    with pytest.raises(rp.ReportError) as error:
        rp.load_runs(tmp_path, "sudoku")
    message = str(error.value)
    assert str(folder / "result.json") in message and "\n" not in message
    (folder / "result.json").write_text(json.dumps({"method": "bgpo_nt1"}))
    with pytest.raises(rp.ReportError, match="no lr, seed, status"):
        rp.load_runs(tmp_path, "sudoku")
    with pytest.raises(SystemExit, match="result.json"):
        rp.main(["--root", str(tmp_path), "--out", str(tmp_path / "docs")])


def test_a_partial_sweep_chooses_no_learning_rate(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "sudoku", "gdpo", LR_LOW, plan.SWEEP_SEED, final_val=0.6)
    write_run(root, "sudoku", "gdpo", LR_MID, plan.SWEEP_SEED, final_val=0.5)
    runs = rp.load_runs(root, "sudoku")
    assert rp.chosen_learning_rates(runs) == {"gdpo": LR_LOW}
    assert rp.complete_sweeps(runs, "sudoku") == {}  # LR_HIGH has not run yet
    write_run(root, "sudoku", "gdpo", LR_HIGH, plan.SWEEP_SEED, status="error: NaN loss")
    assert rp.complete_sweeps(rp.load_runs(root, "sudoku"), "sudoku") == {"gdpo": LR_LOW}


def test_the_archive_reproduces_the_report(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "docs"
    full_study(root)
    (root / "sudoku" / "runs" / "x" / "weights.bin").parent.mkdir(parents=True)
    (root / "sudoku" / "runs" / "x" / "weights.bin").write_bytes(b"0" * 10)
    first = rp.main(["--root", str(root), "--out", str(out / "a"), "--archive", str(out / "raw")])
    again = rp.main(["--root", str(out / "raw"), "--out", str(out / "b")])
    assert first.read_text() == again.read_text()
    assert not list((out / "raw").rglob("weights.bin"))
