"""Reading the study's result files and summarising them: per run (curve points, CSV
row), per method (chosen learning rate, mean ± std over seeds) and what is missing.

A malformed file raises :class:`ReportError` with a one-line message naming it.
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
from collections.abc import Sequence
from pathlib import Path

from experiments.paper_claims import plan
from experiments.paper_claims.formatting import one_line

_BGPO_N_T = re.compile(r"^bgpo_nt(\d+)$")


class ReportError(ValueError):
    """A file the report reads is malformed; the message is one line naming the file."""


# --------------------------------------------------------------------------- reading


def read_json(path: str | Path) -> dict | None:
    """The JSON object at ``path``; None when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"{path}: malformed JSON: {one_line(error)}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: malformed JSON: expected an object, got {type(data).__name__}")
    return data


def load_runs(root: str | Path, task: str) -> list[dict]:
    """Every ``<root>/<task>/runs/*/result.json`` in plan order (method, lr, seed); [] when
    there are none.

    Each dict gets ``run_dir`` (its folder, for the gradient-statistics CSV) and a ``curve``
    list (empty when absent). A file that is not a JSON object with ``method``, ``lr``,
    ``seed`` and ``status``, or whose ``curve`` is not a list of objects, raises
    :class:`ReportError` naming it.
    """
    runs = []
    for path in sorted(Path(root, task, "runs").glob("*/result.json")):
        run = read_json(path)
        missing = [key for key in ("method", "lr", "seed", "status") if key not in run]
        if missing:
            raise ReportError(f"{path}: malformed result.json: no {', '.join(missing)}")
        curve = run.get("curve") or []
        if not isinstance(curve, list) or not all(isinstance(p, dict) for p in curve):
            raise ReportError(f"{path}: malformed result.json: curve is not a list of objects")
        try:
            run["lr"], run["seed"] = float(run["lr"]), int(run["seed"])
        except (TypeError, ValueError):
            raise ReportError(f"{path}: malformed result.json: lr or seed not a number") from None
        run.setdefault("task", task)
        run["curve"] = curve
        run["run_dir"] = str(path.parent)
        runs.append(run)
    order = {key: index for index, key in enumerate(method_order(task, runs))}
    return sorted(runs, key=lambda r: (order[r["method"]], r["lr"], r["seed"]))


def read_grad_stats(path: str | Path) -> list[dict]:
    """Rows of a gradient-statistics CSV (``gradient_report.COLUMNS``); [] when absent.

    Rows whose step, n_t, mean_std or bias do not parse (a repeated header, a cut-off last
    line) are skipped.
    """
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                parsed = {
                    "step": int(row["step"]),
                    "objective": row["objective"],
                    "n_t": int(row["n_t"]),
                    "mean_std": float(row["mean_std"]),
                    "bias": float(row["bias"]),
                }
            except (KeyError, TypeError, ValueError):
                continue
            rows.append(parsed)
    return rows


# --------------------------------------------------------------------------- per run


def is_ok(run: dict) -> bool:
    return run.get("status") == "ok"


def run_name(run: dict) -> str:
    return plan.RunKey(run.get("task", ""), run["method"], run["lr"], run["seed"]).name


def points_with(run: dict, key: str) -> list[dict]:
    """The run's curve points that have a batch and a ``key`` value (e.g. "val")."""
    return [p for p in run.get("curve") or [] if p.get(key) is not None and "batch" in p]


def final_point(run: dict) -> dict | None:
    """The last curve point (largest batch); None for an empty curve."""
    points = [p for p in run.get("curve") or [] if "batch" in p]
    return max(points, key=lambda p: p["batch"]) if points else None


def best_point(run: dict) -> dict | None:
    """The curve point with the highest ``val`` (ties: the earliest batch): the best
    checkpoint picked on validation, whose ``test`` is reported. None without val points."""
    points = points_with(run, "val")
    return min(points, key=lambda p: (-p["val"], p["batch"])) if points else None


def warm_point(run: dict) -> dict | None:
    """The batch-0 curve point (the warm start), if recorded."""
    return next((p for p in run.get("curve") or [] if p.get("batch") == 0), None)


def run_summary(run: dict, chosen: dict[str, float] | None = None) -> dict:
    """One CSV row: the run's main fields, its warm-start, final and best points."""
    final, best, warm = final_point(run), best_point(run), warm_point(run)
    reward_first, reward_last = reward_ends(run)
    chosen_lr = (chosen or {}).get(run["method"])
    return {
        "name": run_name(run),
        "task": run.get("task"),
        "method": run["method"],
        "label": run.get("label") or method_label(run["method"]),
        "lr": run["lr"],
        "seed": run["seed"],
        "status": run.get("status"),
        "chosen_lr": chosen_lr is not None and math.isclose(run["lr"], chosen_lr),
        "rollout_batches": run.get("rollout_batches"),
        "warm_val": (warm or {}).get("val"),
        "warm_test": (warm or {}).get("test"),
        "final_batch": (final or {}).get("batch"),
        "final_val": (final or {}).get("val"),
        "final_test": (final or {}).get("test"),
        "best_batch": (best or {}).get("batch"),
        "best_val": (best or {}).get("val"),
        "best_test": (best or {}).get("test"),
        "reward_first": reward_first,
        "reward_last": reward_last,
        "peak_memory_gib": run.get("peak_memory_gib"),
        "step_s": run.get("step_s"),
        "rollout_s": run.get("rollout_s"),
        "likelihood_s": run.get("likelihood_s"),
        "wall_s": run.get("wall_s"),
        "grad_stats_csv": run.get("grad_stats_csv"),
        "command": run.get("command"),
    }


def reward_ends(run: dict) -> tuple[float | None, float | None]:
    """The mean rollout reward over the first and over the last quarter of the run's rollout
    batches (at least one batch each): whether RL raised the reward it optimises. Every run
    sees the same prompts in the same order, so runs compare at equal batches."""
    rewards = [r for r in run.get("train_reward") or [] if isinstance(r, int | float)]
    if len(rewards) < 2:
        return None, None
    quarter = max(1, len(rewards) // 4)
    return statistics.fmean(rewards[:quarter]), statistics.fmean(rewards[-quarter:])


def twin_pairs(
    runs: Sequence[dict], first: str = "bgpo_nt1", second: str = "vrpo_ol"
) -> list[tuple[dict, dict]]:
    """Pairs of ok runs of two methods at the same lr and seed, as ``(run, run)``.

    BGPO at n_t = 1 and VRPO-OL at n_t = 1 take the same on-policy gradient (one update per
    rollout batch), so such pairs should follow each other: a check of the harness.
    """
    theirs = {(r["lr"], r["seed"]): r for r in runs if r["method"] == second and is_ok(r)}
    return [
        (r, theirs[(r["lr"], r["seed"])])
        for r in runs
        if r["method"] == first and is_ok(r) and (r["lr"], r["seed"]) in theirs
    ]


# --------------------------------------------------------------------------- selection


def method_label(key: str) -> str:
    """The plan's label for a method key ("BGPO, n_t = 16"); the key itself if unplanned."""
    try:
        return plan.method(key).label
    except KeyError:
        return key


def method_order(task: str | None, runs: Sequence[dict]) -> list[str]:
    """Method keys in plan order (``task``'s, else every method), then unplanned ones."""
    planned = [m.key for m in (plan.methods_for(task) if task else plan.METHODS)]
    extra = sorted({r["method"] for r in runs} - set(planned))
    return planned + extra


def bgpo_n_t(method: str) -> int | None:
    """n_t of a plain BGPO row (``bgpo_nt16`` -> 16); None for other methods."""
    match = _BGPO_N_T.match(method)
    return int(match.group(1)) if match else None


def chosen_learning_rates(runs: Sequence[dict]) -> dict[str, float]:
    """Per method, the lr of the grid whose ok seed-``SWEEP_SEED`` run ended with the
    highest val.

    "Ended" is the last curve point; ties go to the smaller lr; runs at an lr outside
    ``plan.LEARNING_RATES`` (an earlier grid's) are reported but never chosen; methods
    without such a run have no entry.
    """
    best: dict[str, tuple[float, float]] = {}  # method -> (-val, lr): min is the choice
    for run in runs:
        if not is_ok(run) or run["seed"] != plan.SWEEP_SEED:
            continue
        if run["lr"] not in plan.LEARNING_RATES:
            continue
        final = final_point(run)
        if final is None or final.get("val") is None:
            continue
        score = (-final["val"], run["lr"])
        if run["method"] not in best or score < best[run["method"]]:
            best[run["method"]] = score
    return {method: lr for method, (_, lr) in best.items()}


def complete_sweeps(runs: Sequence[dict], task: str) -> dict[str, float]:
    """Chosen learning rates of the methods whose every sweep run has finished (ok or
    not): a partial sweep picks nothing, and its method's other seeds wait for it."""
    finished = {(r.get("method"), r.get("lr")) for r in runs if r.get("seed") == plan.SWEEP_SEED}
    chosen = chosen_learning_rates(runs)
    return {
        m.key: chosen[m.key]
        for m in plan.methods_for(task)
        if m.key in chosen and all((m.key, lr) in finished for lr in plan.LEARNING_RATES)
    }


def runs_at(runs: Sequence[dict], method: str, lr: float | None) -> list[dict]:
    """The ok runs of ``method`` at ``lr`` with a non-empty curve (every seed)."""
    if lr is None:
        return []
    return [
        r
        for r in runs
        if r["method"] == method
        and is_ok(r)
        and math.isclose(r["lr"], lr)
        and final_point(r) is not None
    ]


def final_tests(runs: Sequence[dict], chosen: dict[str, float], method: str) -> list[float]:
    """Final test accuracies of ``method``'s ok runs at its chosen lr, one per seed."""
    values = [final_point(r).get("test") for r in runs_at(runs, method, chosen.get(method))]
    return [v for v in values if v is not None]


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof = 1); None where undefined."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) >= 2 else None


def mean_or_none(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are not None; None without any."""
    return mean_std(values)[0]


def planned_runs(chosen: dict[str, float], task: str) -> list[plan.RunKey]:
    """The plan's sweep runs plus the other seeds at the chosen lrs."""
    return plan.sweep_runs(task) + plan.seed_runs(task, chosen)


def missing_runs(runs: Sequence[dict], chosen: dict[str, float], task: str) -> list[dict]:
    """Planned runs without an ok result, then errored runs outside the plan.

    Each entry: ``name``, ``method`` and ``reason`` ("no result" or the run's error).
    """
    by_name = {run_name({**r, "task": task}): r for r in runs}
    entries = []
    planned_names = set()
    for key in planned_runs(chosen, task):
        planned_names.add(key.name)
        run = by_name.get(key.name)
        if run is None:
            entries.append({"name": key.name, "method": key.method, "reason": "no result"})
        elif not is_ok(run):
            entries.append({"name": key.name, "method": key.method, "reason": run["status"]})
        elif final_point(run) is None:
            entries.append({"name": key.name, "method": key.method, "reason": "empty curve"})
    for name, run in by_name.items():
        if name not in planned_names and not is_ok(run):
            entries.append({"name": name, "method": run["method"], "reason": run["status"]})
    return entries


def method_table(
    runs: Sequence[dict], chosen: dict[str, float], task: str | None = None
) -> list[dict]:
    """One row per method (plan order, then unplanned ones) over its ok runs at the chosen lr.

    Row keys: ``method``, ``label``, ``lr`` (None when not chosen), ``lrs_swept`` (ok sweep
    runs behind the choice), ``n``, ``final_mean``/``final_std`` and ``best_mean``/``best_std``
    (test accuracy as fractions; std None for n < 2), ``warm_test`` (mean batch-0 test),
    ``reward_first``/``reward_last`` (mean rollout reward, see :func:`reward_ends`),
    ``peak_gib``, ``step_s``, ``rollout_s``, ``likelihood_s`` (means, None when absent),
    ``grad_stats`` (whether any of those runs ran the gradient-statistics callback, whose
    buffers count in its peak), ``missing`` (planned runs without an ok result).
    """
    task = task or next((r.get("task") for r in runs if r.get("task")), None)
    missing: dict[str, int] = {}  # planned misses per method (errored extras: listed only)
    if task:
        planned = {key.name for key in planned_runs(chosen, task)}
        for entry in missing_runs(runs, chosen, task):
            if entry["name"] in planned:
                missing[entry["method"]] = missing.get(entry["method"], 0) + 1
    rows = []
    for key in method_order(task, runs):
        lr = chosen.get(key)
        at = runs_at(runs, key, lr)
        finals = [final_point(r).get("test") for r in at]
        bests = [(best_point(r) or {}).get("test") for r in at]
        rewards = [reward_ends(r) for r in at]
        final_mean, final_std = mean_std(finals)
        best_mean, best_std = mean_std(bests)
        sweep = {
            r["lr"]
            for r in runs
            if r["method"] == key and is_ok(r) and r["seed"] == plan.SWEEP_SEED
        }
        rows.append(
            {
                "method": key,
                "label": method_label(key),
                "lr": lr,
                "lrs_swept": len(sweep),
                "n": len([v for v in finals if v is not None]),
                "final_mean": final_mean,
                "final_std": final_std,
                "best_mean": best_mean,
                "best_std": best_std,
                "warm_test": mean_or_none([(warm_point(r) or {}).get("test") for r in at]),
                "reward_first": mean_or_none([first for first, _ in rewards]),
                "reward_last": mean_or_none([last for _, last in rewards]),
                "peak_gib": mean_or_none([r.get("peak_memory_gib") for r in at]),
                "step_s": mean_or_none([r.get("step_s") for r in at]),
                "rollout_s": mean_or_none([r.get("rollout_s") for r in at]),
                "likelihood_s": mean_or_none([r.get("likelihood_s") for r in at]),
                "grad_stats": any(r.get("grad_stats_csv") for r in at),
                "missing": missing.get(key, 0),
            }
        )
    return rows
