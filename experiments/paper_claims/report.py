"""The study's report: ``docs/results.md``, a curves PNG and a runs CSV per task.

Reads what the runs wrote under ``--root`` (default ``runs/paper_claims``)::

    <root>/<task>/runs/<run name>/result.json   one per finished (or failed) run
    <root>/<task>/runs/<run name>/<grad_stats_csv>  gradient statistics, when measured
    <root>/<task>/warmstart.json                the SFT warm start (optional)
    <root>/<task>/probe.json                    VRPO-OL's memory probe (optional)
    <root>/<task>/system.json                   machine and setting (optional)

and writes, under ``--out`` (default ``docs``)::

    results.md, results/<task>_curves.png, results/<task>_runs.csv

Every figure in the report is computed from those files; the only numbers typed here are
the two quoted Countdown figures of the contested result. Partial data (missing tasks,
methods, seeds or files) gives "missing" entries; a malformed JSON file stops the report
with a one-line error naming it.

    python -m experiments.paper_claims.report [--root runs/paper_claims] [--out docs]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
from collections.abc import Sequence
from pathlib import Path

from experiments.paper_claims import plan

#: The contested Countdown figures for BGPO with LLaDA-8B, quoted (not ours).
PAPER_COUNTDOWN = 87.5
RERUN_COUNTDOWN = 10.0

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"

#: Claim 4: BGPO's peak memory at n_t = 16 within this factor of n_t = 1's counts as flat.
MEMORY_FLAT_RATIO = 1.10

CLAIMS = (
    (1, "BGPO (n_t = 16) beats diffu-GRPO and VRPO-OL"),
    (2, "Accuracy rises with n_t"),
    (3, "Gradient bias and variance fall with n_t"),
    (4, "Memory stays flat in n_t at a small cost in time"),
    (
        5,
        f"Countdown and the contested figure (the paper: {PAPER_COUNTDOWN:.1f} for BGPO with "
        f"LLaDA-8B; an independent re-run: {RERUN_COUNTDOWN:.1f}): does RL from the warm start "
        "give large gains (more than doubling test accuracy)?",
    ),
)

CSV_COLUMNS = (
    "name",
    "task",
    "method",
    "label",
    "lr",
    "seed",
    "phase",
    "status",
    "chosen_lr",
    "rollout_batches",
    "warm_val",
    "warm_test",
    "final_batch",
    "final_val",
    "final_test",
    "best_batch",
    "best_val",
    "best_test",
    "peak_memory_gib",
    "step_s",
    "rollout_s",
    "likelihood_s",
    "wall_s",
    "grad_stats_csv",
    "command",
)

_BGPO_N_T = re.compile(r"^bgpo_nt(\d+)$")


class ReportError(ValueError):
    """A file the report reads is malformed; the message is one line naming the file."""


# --------------------------------------------------------------------------- reading


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def read_json(path: str | Path) -> dict | None:
    """The JSON object at ``path``; None when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"{path}: malformed JSON: {_one_line(error)}") from None
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
    order = {key: index for index, key in enumerate(_method_order(task, runs))}
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


def _points(run: dict, key: str) -> list[dict]:
    return [p for p in run.get("curve") or [] if p.get(key) is not None and "batch" in p]


def final_point(run: dict) -> dict | None:
    """The last curve point (largest batch); None for an empty curve."""
    points = [p for p in run.get("curve") or [] if "batch" in p]
    return max(points, key=lambda p: p["batch"]) if points else None


def best_point(run: dict) -> dict | None:
    """The curve point with the highest ``val`` (ties: the earliest batch): the best
    checkpoint picked on validation, whose ``test`` is reported. None without val points."""
    points = _points(run, "val")
    return min(points, key=lambda p: (-p["val"], p["batch"])) if points else None


def warm_point(run: dict) -> dict | None:
    """The batch-0 curve point (the warm start), if recorded."""
    return next((p for p in run.get("curve") or [] if p.get("batch") == 0), None)


def run_summary(run: dict, chosen: dict[str, float] | None = None) -> dict:
    """One CSV row: the run's main fields, its warm-start, final and best points."""
    final, best, warm = final_point(run), best_point(run), warm_point(run)
    chosen_lr = (chosen or {}).get(run["method"])
    return {
        "name": run_name(run),
        "task": run.get("task"),
        "method": run["method"],
        "label": run.get("label") or _label(run["method"]),
        "lr": run["lr"],
        "seed": run["seed"],
        "phase": run.get("phase"),
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
        "peak_memory_gib": run.get("peak_memory_gib"),
        "step_s": run.get("step_s"),
        "rollout_s": run.get("rollout_s"),
        "likelihood_s": run.get("likelihood_s"),
        "wall_s": run.get("wall_s"),
        "grad_stats_csv": run.get("grad_stats_csv"),
        "command": run.get("command"),
    }


# --------------------------------------------------------------------------- selection


def _label(key: str) -> str:
    try:
        return plan.method(key).label
    except KeyError:
        return key


def _method_order(task: str | None, runs: Sequence[dict]) -> list[str]:
    planned = [m.key for m in (plan.methods_for(task) if task else plan.METHODS)]
    extra = sorted({r["method"] for r in runs} - set(planned))
    return planned + extra


def chosen_learning_rates(runs: Sequence[dict]) -> dict[str, float]:
    """Per method, the lr whose ok seed-``SWEEP_SEED`` run ended with the highest val.

    "Ended" is the last curve point; ties go to the smaller lr; methods without such a run
    have no entry.
    """
    best: dict[str, tuple[float, float]] = {}  # method -> (-val, lr): min is the choice
    for run in runs:
        if not is_ok(run) or run["seed"] != plan.SWEEP_SEED:
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


def _mean(values: Sequence[float | None]) -> float | None:
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
    ``peak_gib``, ``step_s``, ``rollout_s``, ``likelihood_s`` (means, None when absent),
    ``missing`` (planned runs without an ok result).
    """
    task = task or next((r.get("task") for r in runs if r.get("task")), None)
    missing: dict[str, int] = {}  # planned misses per method (errored extras: listed only)
    if task:
        planned = {key.name for key in planned_runs(chosen, task)}
        for entry in missing_runs(runs, chosen, task):
            if entry["name"] in planned:
                missing[entry["method"]] = missing.get(entry["method"], 0) + 1
    rows = []
    for key in _method_order(task, runs):
        lr = chosen.get(key)
        at = runs_at(runs, key, lr)
        finals = [final_point(r).get("test") for r in at]
        bests = [(best_point(r) or {}).get("test") for r in at]
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
                "label": _label(key),
                "lr": lr,
                "lrs_swept": len(sweep),
                "n": len([v for v in finals if v is not None]),
                "final_mean": final_mean,
                "final_std": final_std,
                "best_mean": best_mean,
                "best_std": best_std,
                "warm_test": _mean([(warm_point(r) or {}).get("test") for r in at]),
                "peak_gib": _mean([r.get("peak_memory_gib") for r in at]),
                "step_s": _mean([r.get("step_s") for r in at]),
                "rollout_s": _mean([r.get("rollout_s") for r in at]),
                "likelihood_s": _mean([r.get("likelihood_s") for r in at]),
                "missing": missing.get(key, 0),
            }
        )
    return rows


# --------------------------------------------------------------------------- formatting


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal; "–" for None."""
    return "–" if value is None else f"{100 * value:.1f}"


def pct_pm(mean: float | None, std: float | None) -> str:
    """Mean ± std in percent: "45.2 ± 1.3"; "45.2 ± –" for one seed; "–" without data."""
    if mean is None:
        return "–"
    return f"{pct(mean)} ± {pct(std)}"


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _points_diff(value: float) -> str:
    return f"{100 * value:+.1f}"


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _n_t_list(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in sorted(values))


# --------------------------------------------------------------------------- claims


def bgpo_n_t(method: str) -> int | None:
    """n_t of a plain BGPO row (``bgpo_nt16`` -> 16); None for other methods."""
    match = _BGPO_N_T.match(method)
    return int(match.group(1)) if match else None


def _accuracy(values: Sequence[float]) -> str:
    """Mean ± std over seeds in percent, e.g. "38.5 ± 0.4%"; "–" without any."""
    return f"{pct_pm(*mean_std(values))}%" if values else "–"


def _compare(a: list[float], b: list[float]) -> tuple[float, float]:
    """Difference of means and its standard error sqrt(s1²/n1 + s2²/n2)."""
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    return ma - mb, math.sqrt(sa**2 / len(a) + sb**2 / len(b))


def claim_beats_baselines(runs: Sequence[dict], chosen: dict[str, float]) -> tuple[str, str]:
    """Claim 1: BGPO n_t = 16 against diffu-GRPO and VRPO-OL, final test at the chosen lr.

    Per baseline, d = difference of means and SE = sqrt(s1²/n1 + s2²/n2). Does not hold if
    d < -2 SE against either baseline with data; otherwise holds if d > 2 SE against both;
    inconclusive when either comparison lacks 2 seeds a side or lies within 2 SE.
    """
    ours_key, baselines = "bgpo_nt16", ("diffu_grpo", "vrpo_ol")
    ours = final_tests(runs, chosen, ours_key)
    parts, outcomes, short = [], [], []
    for key in baselines:
        theirs = final_tests(runs, chosen, key)
        if len(ours) < 2 or len(theirs) < 2:
            short.append(f"{_label(key)} has {len(theirs)}")
            parts.append(f"{_accuracy(theirs)} for {_label(key)} (n = {len(theirs)})")
            outcomes.append(None)
            continue
        d, se = _compare(ours, theirs)
        outcomes.append("better" if d > 2 * se else "worse" if d < -2 * se else "within")
        parts.append(
            f"{_accuracy(theirs)} for {_label(key)} (n = {len(theirs)}; difference "
            f"{_points_diff(d)} points, 2 SE = {100 * 2 * se:.1f})"
        )
    evidence = (
        f"Final test accuracy at the chosen lr is {_accuracy(ours)} for {_label(ours_key)} "
        f"(n = {len(ours)}) against " + " and ".join(parts)
    )
    if "worse" in outcomes:
        return FAILS, evidence + "."
    if None in outcomes:
        why = f"{_label(ours_key)} has {len(ours)}, " + ", ".join(short)
        return INCONCLUSIVE, f"{evidence}; at least 2 seeds a side are needed ({why})."
    if all(o == "better" for o in outcomes):
        return HOLDS, evidence + "."
    return INCONCLUSIVE, evidence + "; not every difference exceeds 2 SE."


def slope_with_se(x: Sequence[float], y: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares slope of y on x and its standard error; None with < 3 points or one x."""
    n = len(x)
    if n < 3 or len(set(x)) < 2:
        return None
    mx, my = statistics.fmean(x), statistics.fmean(y)
    sxx = sum((xi - mx) ** 2 for xi in x)
    slope = sum((xi - mx) * (yi - my) for xi, yi in zip(x, y, strict=True)) / sxx
    residuals = [yi - my - slope * (xi - mx) for xi, yi in zip(x, y, strict=True)]
    se = math.sqrt(sum(r * r for r in residuals) / (n - 2) / sxx)
    return slope, se


def claim_accuracy_rises_with_n_t(
    runs: Sequence[dict], chosen: dict[str, float]
) -> tuple[str, str]:
    """Claim 2: least-squares slope of final test accuracy on log2(n_t) over every BGPO n_t
    run at its chosen lr; holds if slope > 2 SE, does not hold if slope < -2 SE."""
    by_n_t: dict[int, list[float]] = {}
    for key in _method_order(None, runs):
        n_t = bgpo_n_t(key)
        if n_t is not None:
            values = final_tests(runs, chosen, key)
            if values:
                by_n_t[n_t] = values
    x = [math.log2(n_t) for n_t, values in by_n_t.items() for _ in values]
    y = [v for values in by_n_t.values() for v in values]
    means = ", ".join(f"{pct(statistics.fmean(by_n_t[n]))}% at n_t = {n}" for n in sorted(by_n_t))
    fit = slope_with_se(x, y)
    if fit is None:
        return INCONCLUSIVE, (
            f"Too few BGPO runs for a slope ({_runs(len(y))} at n_t = "
            f"{_n_t_list(by_n_t) or 'none'}; at least 3 runs over 2 n_t values are needed)"
            + (f"; mean final test accuracy {means}." if means else ".")
        )
    slope, se = fit
    verdict = HOLDS if slope > 2 * se else FAILS if slope < -2 * se else INCONCLUSIVE
    return verdict, (
        f"Final test accuracy changes by {_points_diff(slope)} points per doubling of n_t "
        f"(least-squares slope over {len(y)} BGPO runs at n_t = {_n_t_list(by_n_t)}, "
        f"SE {100 * se:.1f}; mean {means})."
    )


def gradient_measurements(runs: Sequence[dict], objective: str = "bgpo") -> list[dict]:
    """Per (run, measurement step), ``objective``'s rows at the smallest and largest n_t.

    Reads each run's ``grad_stats_csv`` (runs of any status: a measurement does not depend on
    the run finishing). Entries: ``run``, ``step``, ``small``/``large`` (n_t),
    ``std_small``/``std_large``, ``bias_small``/``bias_large``.
    """
    measurements = []
    for run in runs:
        name = run.get("grad_stats_csv")
        if not name or not run.get("run_dir"):
            continue
        by_step: dict[int, dict[int, dict]] = {}
        for row in read_grad_stats(Path(run["run_dir"], name)):
            if row["objective"] == objective:
                by_step.setdefault(row["step"], {})[row["n_t"]] = row
        for step, rows in sorted(by_step.items()):
            if len(rows) < 2:
                continue
            small, large = rows[min(rows)], rows[max(rows)]
            measurements.append(
                {
                    "run": run_name(run),
                    "step": step,
                    "small": small["n_t"],
                    "large": large["n_t"],
                    "std_small": small["mean_std"],
                    "std_large": large["mean_std"],
                    "bias_small": small["bias"],
                    "bias_large": large["bias"],
                }
            )
    return measurements


def _median_ratio(measurements: Sequence[dict], key: str) -> str:
    ratios = [m[f"{key}_large"] / m[f"{key}_small"] for m in measurements if m[f"{key}_small"]]
    return f"{statistics.median(ratios):.2f}" if ratios else "–"


def claim_gradient_noise_falls(runs: Sequence[dict]) -> tuple[str, str]:
    """Claim 3: in each measurement, are BGPO's mean_std and bias at the largest n_t below
    those at the smallest? Holds if in every one (and there is one), does not hold if not in
    the majority, else inconclusive."""
    measurements = gradient_measurements(runs)
    if not measurements:
        return INCONCLUSIVE, "No gradient statistics with BGPO rows at two or more n_t values."
    falls = [
        m["std_large"] < m["std_small"] and m["bias_large"] < m["bias_small"] for m in measurements
    ]
    pairs = sorted({(m["small"], m["large"]) for m in measurements})
    grid = " or ".join(f"n_t = {large} vs {small}" for small, large in pairs)
    n_runs = len({m["run"] for m in measurements})
    sentence = (
        f"In {sum(falls)} of {len(falls)} measurements ({n_runs} run"
        f"{'s' if n_runs != 1 else ''}) both the per-parameter gradient std and the bias are "
        f"lower at the largest n_t than at the smallest ({grid}); median ratios largest/"
        f"smallest: std {_median_ratio(measurements, 'std')}, bias "
        f"{_median_ratio(measurements, 'bias')}."
    )
    if all(falls):
        return HOLDS, sentence
    if falls.count(False) > len(falls) / 2:
        return FAILS, sentence
    return INCONCLUSIVE, sentence


def _probe_clause(probe: dict | None) -> str:
    if not probe:
        return ""
    peaks = probe.get("vrpo_ol_peak_gib") or {}
    listed = ", ".join(
        f"{peaks[k]:.1f} GiB at n_t = {k}"
        for k in sorted(peaks, key=lambda k: int(k) if str(k).isdigit() else 0)
        if isinstance(peaks[k], int | float)
    )
    clause = f"; the probe measured VRPO-OL at {listed}" if listed else "; the probe"
    if isinstance(probe.get("bgpo_nt16_peak_gib"), int | float):
        clause += f" against {probe['bgpo_nt16_peak_gib']:.1f} GiB for BGPO at n_t = 16"
    if probe.get("vrpo_ol_n_t") is not None:
        clause += f"{',' if listed else ''} so VRPO-OL ran at n_t = {probe['vrpo_ol_n_t']}"
    return "" if clause == "; the probe" else clause


def claim_memory_flat(
    runs: Sequence[dict], probe: dict | None = None, system: dict | None = None
) -> tuple[str, str]:
    """Claim 4: BGPO's mean peak memory at n_t = 16 over n_t = 1 (ok runs, every lr and
    seed), holds at a ratio <= 1.10, with the step-time ratio as the cost."""

    def values(key: str, field: str) -> list[float]:
        return [
            r[field] for r in runs if r["method"] == key and is_ok(r) and r.get(field) is not None
        ]

    mem_1, mem_16 = values("bgpo_nt1", "peak_memory_gib"), values("bgpo_nt16", "peak_memory_gib")
    time_1, time_16 = values("bgpo_nt1", "step_s"), values("bgpo_nt16", "step_s")
    probe_clause = _probe_clause(probe)
    if not mem_1 or not mem_16 or not _mean(mem_1):
        return INCONCLUSIVE, (
            f"No peak memory recorded for BGPO at both n_t = 1 and 16 ({len(mem_1)} and "
            f"{len(mem_16)} runs with memory){probe_clause}."
        )
    ratio = _mean(mem_16) / _mean(mem_1)
    if time_1 and time_16 and _mean(time_1):
        cost = (
            f", at {_mean(time_16) / _mean(time_1):.2f}× the time per rollout batch "
            f"({_mean(time_16):.2f} vs {_mean(time_1):.2f} s)"
        )
    else:
        cost = ", with no step time recorded for both"
    shared = (system or {}).get("concurrent_runs")
    if isinstance(shared, int) and shared > 1:
        cost += f" (timed with up to {shared} runs sharing the device)"
    sentence = (
        f"BGPO's peak memory at n_t = 16 is {ratio:.2f}× that at n_t = 1 "
        f"({_mean(mem_16):.2f} vs {_mean(mem_1):.2f} GiB, means over {_runs(len(mem_16))} "
        f"and {_runs(len(mem_1))}){cost}{probe_clause}."
    )
    return (HOLDS if ratio <= MEMORY_FLAT_RATIO else FAILS), sentence


def _params_phrase(warmstart: dict | None) -> str:
    params = (warmstart or {}).get("params")
    if isinstance(params, int | float) and params > 0:
        return f"our {params / 1e6:.0f}M-parameter model"
    return "our small (tens-of-millions-parameter) model"


def claim_countdown_gain(
    runs: Sequence[dict], chosen: dict[str, float], warmstart: dict | None = None
) -> tuple[str, str]:
    """Claim 5: the Countdown runs against the contested 87.5 (paper) vs 10.0 (re-run).

    Holds when BGPO n_t = 16's mean final test is more than double the warm start's (and,
    with 2+ seeds, its gain exceeds 2 SE); does not hold otherwise; inconclusive without
    a warm start or BGPO runs. The warm start's test comes from ``warmstart.json``, else from
    the runs' batch-0 points.
    """
    disclaimer = (
        f"{_params_phrase(warmstart)} says nothing direct about LLaDA-8B's absolute numbers "
        f"(the paper's {PAPER_COUNTDOWN:.1f} against the re-run's {RERUN_COUNTDOWN:.1f})"
    )
    warm = (warmstart or {}).get("test_accuracy")
    if warm is None:
        warm = _mean([(warm_point(r) or {}).get("test") for r in runs if is_ok(r)])
    table = [row for row in method_table(runs, chosen, "countdown") if row["n"]]
    top = max(table, key=lambda row: row["final_mean"], default=None)
    gains = []  # per seed: final test minus the run's own batch-0 test (else the warm start's)
    for run in runs_at(runs, "bgpo_nt16", chosen.get("bgpo_nt16")):
        start = (warm_point(run) or {}).get("test", warm)
        end = final_point(run).get("test")
        if start is not None and end is not None:
            gains.append(end - start)
    if warm is None or not gains:
        return INCONCLUSIVE, (
            f"Our Countdown results lack a warm-start accuracy or BGPO (n_t = 16) runs "
            f"({_runs(len(gains))}), so they say nothing yet; in any case, {disclaimer}."
        )
    gain, gain_std = mean_std(gains)
    final = _mean(final_tests(runs, chosen, "bgpo_nt16"))
    clear = gain > (0 if gain_std is None else 2 * gain_std / math.sqrt(len(gains)))
    large = clear and final > 2 * warm
    if large:
        size = "a large gain from RL (more than doubling the warm start)"
    elif clear:
        size = "a modest gain from RL (short of doubling the warm start)"
    else:
        size = "no clear gain from RL"
    best = f"; the best method, {top['label']}, ends at {pct(top['final_mean'])}%" if top else ""
    return (HOLDS if large else FAILS), (
        f"Our Countdown warm start scores {pct(warm)}% test accuracy{best}; BGPO (n_t = 16) "
        f"gains {_points_diff(gain)} ± {pct(gain_std)} points over the warm start "
        f"(n = {len(gains)}, ending at {pct(final)}%), {size}; {disclaimer}."
    )


def task_claims(
    runs: Sequence[dict],
    chosen: dict[str, float],
    task: str,
    *,
    probe: dict | None = None,
    system: dict | None = None,
    warmstart: dict | None = None,
) -> dict[int, tuple[str, str]]:
    """The claims' (verdict, sentence) for one task; claim 5 on Countdown only."""
    claims = {
        1: claim_beats_baselines(runs, chosen),
        2: claim_accuracy_rises_with_n_t(runs, chosen),
        3: claim_gradient_noise_falls(runs),
        4: claim_memory_flat(runs, probe, system),
    }
    if task == "countdown":
        claims[5] = claim_countdown_gain(runs, chosen, warmstart)
    return claims


# --------------------------------------------------------------------------- outputs


def write_runs_csv(runs: Sequence[dict], chosen: dict[str, float], path: str | Path) -> Path:
    """One row per run (``CSV_COLUMNS``; accuracies as fractions)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for run in runs:
            writer.writerow(run_summary(run, chosen))
    return path


def curve_series(
    runs: Sequence[dict], method: str, lr: float | None, split: str
) -> list[tuple[int, float, float | None, int]]:
    """(batch, mean, std or None, n) of ``split`` accuracy over the ok runs at ``lr``."""
    by_batch: dict[int, list[float]] = {}
    for run in runs_at(runs, method, lr):
        for point in _points(run, split):
            by_batch.setdefault(point["batch"], []).append(point[split])
    return [(b, *mean_std(v), len(v)) for b, v in sorted(by_batch.items())]


def _colours(methods: Sequence[str]) -> dict[str, tuple[object, str]]:
    """BGPO n_t lines in shades of blue (darker for larger n_t), the rest from tab10."""
    from matplotlib import colormaps

    bgpo = sorted((m for m in methods if bgpo_n_t(m) is not None), key=bgpo_n_t)
    blues, others = colormaps["Blues"], colormaps["tab10"]
    colours: dict[str, tuple[object, str]] = {}
    for index, key in enumerate(bgpo):
        colours[key] = (blues(0.4 + 0.55 * index / max(len(bgpo) - 1, 1)), "-")
    rest = [m for m in methods if m not in colours]
    for index, key in enumerate(rest):
        colours[key] = (others(1 + index % 9), "--" if key.startswith("bgpo") else "-")
    return colours


def plot_curves(
    runs: Sequence[dict], chosen: dict[str, float], task: str, path: str | Path
) -> str | None:
    """Test (left) and val (right) accuracy against rollout batches, mean over seeds at the
    chosen lr, ±1 std shaded where n >= 2. Returns None when written, else why not."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return "matplotlib is not installed"
    methods = [m for m in _method_order(task, runs) if curve_series(runs, m, chosen.get(m), "test")]
    if not methods:
        return "no finished runs to plot"
    colours = _colours(methods)
    figure = Figure(figsize=(11, 5.2), layout="constrained")
    panels = figure.subplots(1, 2, sharex=True)
    for panel, split in zip(panels, ("test", "val"), strict=True):
        for key in methods:
            series = curve_series(runs, key, chosen[key], split)
            if not series:
                continue
            colour, style = colours[key]
            batches = [b for b, *_ in series]
            means = [100 * m for _, m, _, _ in series]
            n = max(count for *_, count in series)
            panel.plot(
                batches,
                means,
                color=colour,
                linestyle=style,
                marker="o",
                markersize=3,
                label=f"{_label(key)} (lr {chosen[key]:g}, n = {n})",
            )
            band = [(b, m, s) for b, m, s, count in series if s is not None and count >= 2]
            if band:
                panel.fill_between(
                    [b for b, _, _ in band],
                    [100 * (m - s) for _, m, s in band],
                    [100 * (m + s) for _, m, s in band],
                    color=colour,
                    alpha=0.15,
                    linewidth=0,
                )
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        panel.set_xlabel("rollout batches")
        panel.set_ylabel(f"{split} accuracy (%)")
        panel.grid(True, alpha=0.3)
    handles, labels = panels[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=3, fontsize="small")
    figure.suptitle(f"{task}: mean over seeds at each method's chosen lr (±1 std shaded)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return None


def _machine_line(system: dict | None) -> str:
    if not system:
        return "Machine: unknown (no system.json)."
    device = str(system.get("device") or "unknown")
    name = "CPU" if device.lower().startswith("cpu") else device
    extras = []
    if system.get("torch"):
        extras.append(f"torch {system['torch']}")
    if system.get("concurrent_runs"):
        sharing = " through CUDA MPS" if system.get("mps") else ""
        extras.append(f"{system['concurrent_runs']} runs at a time{sharing}")
    return f"Machine: {name}" + (f" ({', '.join(extras)})" if extras else "") + "."


def _setting_line(system: dict | None) -> str:
    system = system or {}
    lrs = ", ".join(f"{lr:g}" for lr in plan.LEARNING_RATES)
    seeds = ", ".join(str(s) for s in plan.SEEDS)
    config = f"; config `{system['rl_config']}`" if system.get("rl_config") else ""
    return (
        f"Setting: {system.get('rollout_batches', '–')} rollout batches of "
        f"{system.get('prompts_per_batch', '–')} prompts × G = {system.get('group_size', '–')}, "
        f"evaluated every {system.get('eval_every', '–')} batches; lrs swept: {lrs} "
        f"(seed {plan.SWEEP_SEED}); seeds at the chosen lr: {seeds}{config}."
    )


def _warm_start_line(warmstart: dict | None) -> str:
    if not warmstart:
        return "Warm start: missing (no warmstart.json)."
    params = warmstart.get("params")
    size = f"{params / 1e6:.1f}M parameters, " if isinstance(params, int | float) else ""
    config = f" (`{warmstart['config']}`)" if warmstart.get("config") else ""
    return (
        f"Warm start: {size}{warmstart.get('sft_steps', '–')} SFT steps{config}; "
        f"val {pct(warmstart.get('val_accuracy'))}%, test {pct(warmstart.get('test_accuracy'))}%."
    )


def markdown_table(rows: Sequence[dict]) -> str:
    """The main table: accuracies in percent, mean ± sample std over seeds."""
    lines = [
        "| method | chosen lr | seeds n | final test % | best-checkpoint test % | peak GiB "
        "| s per batch (rollout + likelihood) | missing runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["lr"] is None:
            lr = "–"
        else:
            lr = f"{row['lr']:g}"
            if row["lrs_swept"] < len(plan.LEARNING_RATES):
                lr += f" ({row['lrs_swept']}/{len(plan.LEARNING_RATES)} lrs)"
        step = _num(row["step_s"], 2)
        if row["rollout_s"] is not None or row["likelihood_s"] is not None:
            step += f" ({_num(row['rollout_s'], 2)} + {_num(row['likelihood_s'], 2)})"
        lines.append(
            f"| {row['label']} | {lr} | {row['n']} | "
            f"{pct_pm(row['final_mean'], row['final_std'])} | "
            f"{pct_pm(row['best_mean'], row['best_std'])} | {_num(row['peak_gib'], 2)} | "
            f"{step} | {row['missing']} |"
        )
    return "\n".join(lines) + "\n"


def finished_runs_table(runs: Sequence[dict]) -> str:
    """One line per run: its warm-start, final and best-checkpoint accuracies and cost."""
    lines = [
        "| method | lr | seed | status | warm-start test | final val | final test "
        "| best test | s per batch | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        warm, final, best = warm_point(run), final_point(run), best_point(run)
        status = "ok" if is_ok(run) else _one_line(run.get("status", "?"))
        lines.append(
            f"| {_label(run.get('method', '?'))} | {run.get('lr', 0):g} | {run.get('seed')} | "
            f"{status} | {pct((warm or {}).get('test'))} | {pct((final or {}).get('val'))} | "
            f"{pct((final or {}).get('test'))} | {pct((best or {}).get('test'))} | "
            f"{_num(run.get('step_s'), 2)} | {_num(run.get('peak_memory_gib'), 2)} |"
        )
    return "\n".join(lines) + "\n"


def task_section(
    task: str,
    runs: Sequence[dict],
    chosen: dict[str, float],
    *,
    system: dict | None,
    warmstart: dict | None,
    plot_note: str | None,
) -> str:
    """One task's markdown: machine, setting, warm start, table, curves, missing runs."""
    rows = method_table(runs, chosen, task)
    missing = missing_runs(runs, chosen, task)
    parts = [
        f"## {task.capitalize()}",
        "",
        _machine_line(system),
        "",
        _setting_line(system),
        "",
        _warm_start_line(warmstart),
        "",
    ]
    if not runs:
        parts += ["No runs yet: every planned run is missing.", ""]
    parts += [
        "Final test is the last evaluation; best-checkpoint test is the test accuracy at the "
        "evaluation with the highest validation accuracy (picked on validation). Mean ± sample "
        'std over seeds at each method\'s chosen lr ("–": one seed).',
        "",
        markdown_table(rows),
    ]
    if missing and runs:
        parts += [
            "The study is not complete: a method's learning rate is chosen only once its "
            "whole sweep has finished. Every run finished so far (test and validation "
            "accuracy in %; best = the test accuracy at the highest validation):",
            "",
            finished_runs_table(runs),
        ]
    if plot_note is None:
        parts.append(f"![{task} curves](results/{task}_curves.png)")
    else:
        parts.append(f"Curves: not drawn ({plot_note}).")
    parts += ["", f"Every run: [results/{task}_runs.csv](results/{task}_runs.csv).", ""]
    parts += [f"### Missing ({len(missing)})", ""]
    if missing:
        parts += [f"- `{m['name']}`: {_one_line(m['reason'])}" for m in missing]
    else:
        parts.append("None: every planned run finished.")
    parts.append("")
    return "\n".join(parts)


def _commands_block(task: str, runs: Sequence[dict]) -> str:
    commands = [r["command"] for r in runs if r.get("command")]
    if not commands:
        return f"- {task}: no per-run commands recorded yet."
    body = "\n".join(commands)
    return (
        f"<details><summary>{task}: the {len(commands)} per-run commands</summary>\n\n"
        f"```bash\n{body}\n```\n\n</details>"
    )


def render_markdown(tasks: dict[str, dict]) -> str:
    """The whole ``results.md`` from each task's pieces (see :func:`main`)."""
    parts = [
        "# BGPO paper claims at small scale",
        "",
        "_Generated by experiments/paper_claims/report.py; do not edit by hand._",
        "",
        "## Reproduce",
        "",
        "The whole study (it runs what is not done yet, so the same command continues it), "
        "then this report:",
        "",
        "```bash",
        "python -m experiments.paper_claims --datasets ../shared/datasets --concurrency 14 \\",
        "    --no-report",
        "python -m experiments.paper_claims.report",
        "```",
        "",
        "Each run's own command is in the task's runs CSV and below.",
        "",
        *(_commands_block(task, data["runs"]) + "\n" for task, data in tasks.items()),
    ]
    parts += [data["section"] for data in tasks.values()]
    parts += ["## Claims", ""]
    for number, title in CLAIMS:
        parts += [f"### {number}. {title}", ""]
        for task, data in tasks.items():
            if number in data["claims"]:
                verdict, sentence = data["claims"][number]
                parts.append(f"- {task.capitalize()}: **{verdict}**. {sentence}")
        parts.append("")
    parts += ["_Generated by experiments/paper_claims/report.py; do not edit by hand._", ""]
    return "\n".join(parts)


def build_task(root: Path, task: str, out: Path) -> dict:
    """Reads one task's files, writes its CSV and PNG, returns its report pieces."""
    task_dir = root / task
    runs = load_runs(root, task)
    system = read_json(task_dir / "system.json")
    warmstart = read_json(task_dir / "warmstart.json")
    probe = read_json(task_dir / "probe.json")
    chosen = complete_sweeps(runs, task)
    write_runs_csv(runs, chosen, out / "results" / f"{task}_runs.csv")
    plot_note = plot_curves(runs, chosen, task, out / "results" / f"{task}_curves.png")
    return {
        "runs": runs,
        "chosen": chosen,
        "section": task_section(
            task, runs, chosen, system=system, warmstart=warmstart, plot_note=plot_note
        ),
        "claims": task_claims(runs, chosen, task, probe=probe, system=system, warmstart=warmstart),
    }


RAW_FILES = ("*/warmstart.json", "*/probe.json", "*/system.json", "*/runs/*/result.json",
             "*/runs/*/gradient_statistics.csv")  # fmt: skip


def archive(root: Path, dest: Path) -> list[Path]:
    """Copies the small files the report reads (no weights, no logs) from ``root`` into
    ``dest`` with the same layout, so that ``--root dest`` reproduces the report."""
    copied = []
    for pattern in RAW_FILES:
        for source in sorted(root.glob(pattern)):
            target = dest / source.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            copied.append(target)
    return copied


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("runs/paper_claims"))
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument(
        "--archive",
        type=Path,
        default=None,
        metavar="DIR",
        help="also copy the result files into DIR (e.g. docs/results/raw, to commit)",
    )
    args = parser.parse_args(argv)
    if args.archive is not None:
        archive(args.root, args.archive)
    try:
        tasks = {task: build_task(args.root, task, args.out) for task in plan.TASKS}
    except ReportError as error:
        raise SystemExit(f"error: {error}") from None
    path = args.out / "results.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(tasks))
    print(f"wrote {path} and {args.out / 'results'}/<task>_{{runs.csv,curves.png}}")
    return path


if __name__ == "__main__":
    main()
