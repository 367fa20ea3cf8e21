"""The paper-claims results on synthetic result files: lr choice, curve points, the method
table and missing runs."""

from __future__ import annotations

import math

import pytest

from experiments.paper_claims import plan, report, results
from tests.experiments.paper_claims_helpers import LR_HIGH, LR_LOW, LR_MID, loaded, write_run

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
    assert results.final_point(run) == curve[3]
    assert results.best_point(run) == curve[1]
    assert results.warm_point(run) == curve[0]
    empty = {**run, "curve": []}
    assert results.final_point(empty) is None and results.best_point(empty) is None


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
    rows = {row["method"]: row for row in results.method_table(runs, chosen, task)}
    assert [row["method"] for row in results.method_table(runs, chosen, task)] == [
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

    table = report.markdown_table(list(rows.values()))
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
    missing = {m["name"]: m["reason"] for m in results.missing_runs(runs, chosen, task)}
    name = lambda lr, seed: plan.RunKey(task, "wd1", lr, seed).name  # noqa: E731
    assert missing[name(LR_HIGH, 1)] == "error: CUDA out of memory"
    assert missing[name(LR_HIGH, 2)] == "no result"
    assert missing[name(LR_LOW, 2)] == "error: killed"
    assert name(LR_MID, 0) not in missing
    others = [m for m in plan.methods_for(task) if m.key != "wd1"]
    assert len(missing) == 3 + 3 * len(others)
    row = next(r for r in results.method_table(runs, chosen, task) if r["method"] == "wd1")
    assert row["missing"] == 2  # planned only


def test_a_partial_sweep_chooses_no_learning_rate(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "sudoku", "gdpo", LR_LOW, plan.SWEEP_SEED, final_val=0.6)
    write_run(root, "sudoku", "gdpo", LR_MID, plan.SWEEP_SEED, final_val=0.5)
    runs = results.load_runs(root, "sudoku")
    assert results.chosen_learning_rates(runs) == {"gdpo": LR_LOW}
    assert results.complete_sweeps(runs, "sudoku") == {}  # LR_HIGH has not run yet
    write_run(root, "sudoku", "gdpo", LR_HIGH, plan.SWEEP_SEED, status="error: NaN loss")
    assert results.complete_sweeps(results.load_runs(root, "sudoku"), "sudoku") == {"gdpo": LR_LOW}


def test_a_run_outside_the_grid_is_never_chosen(tmp_path):
    root = tmp_path / "runs"
    off_grid = max(plan.LEARNING_RATES) * 3
    write_run(root, "sudoku", "gdpo", off_grid, plan.SWEEP_SEED, final_val=0.9)
    write_run(root, "sudoku", "gdpo", LR_MID, plan.SWEEP_SEED, final_val=0.5)
    assert results.chosen_learning_rates(results.load_runs(root, "sudoku")) == {"gdpo": LR_MID}


def test_reward_ends_average_the_first_and_last_quarter_of_the_batches():
    rewards = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]  # quarters of 2 batches
    first, last = results.reward_ends({"train_reward": rewards})
    assert math.isclose(first, 0.15) and math.isclose(last, 0.75)
    assert results.reward_ends({"train_reward": [0.2, 0.4, 0.6]}) == (0.2, 0.6)  # one each
    assert results.reward_ends({"train_reward": [0.3]}) == (None, None)
    assert results.reward_ends({}) == (None, None)


def test_method_table_and_csv_rows_carry_the_rollout_reward_ends(tmp_path):
    write_run(tmp_path, "sudoku", "gdpo", LR_MID, 0)  # the helper's train_reward: [0.3, 0.4]
    runs, chosen = loaded(tmp_path)
    (row,) = [r for r in results.method_table(runs, chosen) if r["method"] == "gdpo"]
    assert math.isclose(row["reward_first"], 0.3) and math.isclose(row["reward_last"], 0.4)
    summary = results.run_summary(runs[0], chosen)
    assert (summary["reward_first"], summary["reward_last"]) == (0.3, 0.4)
    assert "| 0.300 → 0.400 |" in report.markdown_table([row])
