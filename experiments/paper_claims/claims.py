"""The paper's claims and their verdicts (holds, does not hold, inconclusive), each with the
sentence of evidence behind it, computed from the runs as ``results`` reads them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from experiments.paper_claims.formatting import pct, pct_pm
from experiments.paper_claims.results import (
    bgpo_n_t,
    final_point,
    final_tests,
    is_ok,
    mean_or_none,
    mean_std,
    method_label,
    method_order,
    method_table,
    read_grad_stats,
    run_name,
    runs_at,
    warm_point,
)

#: The contested Countdown figures for BGPO with LLaDA-8B, quoted (not ours).
PAPER_COUNTDOWN = 87.5
RERUN_COUNTDOWN = 10.0

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"

#: Claim 4: BGPO's peak memory at n_t = 16 within this factor of n_t = 1's counts as flat.
MEMORY_FLAT_RATIO = 1.10
#: Claim 4's verdict is on memory; a time ratio above this is said not to be a small cost.
SMALL_TIME_RATIO = 2.0

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


def _points_diff(value: float) -> str:
    return f"{100 * value:+.1f}"


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _n_t_list(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in sorted(values))


def _accuracy(values: Sequence[float]) -> str:
    """Mean ± std over seeds in percent, e.g. "38.5 ± 0.4%"; "–" without any."""
    return f"{pct_pm(*mean_std(values))}%" if values else "–"


def _compare(a: list[float], b: list[float]) -> tuple[float, float]:
    """Difference of means and its standard error sqrt(s1²/n1 + s2²/n2)."""
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    return ma - mb, math.sqrt(sa**2 / len(a) + sb**2 / len(b))


def _all_below_warm_start(
    runs: Sequence[dict], chosen: dict[str, float], keys: Sequence[str]
) -> str:
    """A clause for when every run compared ends below its own batch-0 test accuracy: then
    the comparison ranks losses from the warm start, not gains."""
    compared = [r for key in keys for r in runs_at(runs, key, chosen.get(key))]
    starts = [(warm_point(r) or {}).get("test") for r in compared]
    ends = [final_point(r).get("test") for r in compared]
    pairs = [(a, b) for a, b in zip(starts, ends, strict=True) if None not in (a, b)]
    if not pairs or len(pairs) < len(compared) or any(end >= start for start, end in pairs):
        return ""
    start = statistics.fmean(a for a, _ in pairs)
    return (
        f"; all {len(pairs)} of these runs end below their warm start's test accuracy "
        f"({pct(start)}%), so this ranks how much each method loses, not what it gains"
    )


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
            short.append(f"{method_label(key)} has {len(theirs)}")
            parts.append(f"{_accuracy(theirs)} for {method_label(key)} (n = {len(theirs)})")
            outcomes.append(None)
            continue
        d, se = _compare(ours, theirs)
        outcomes.append("better" if d > 2 * se else "worse" if d < -2 * se else "within")
        parts.append(
            f"{_accuracy(theirs)} for {method_label(key)} (n = {len(theirs)}; difference "
            f"{_points_diff(d)} points, 2 SE = {100 * 2 * se:.1f})"
        )
    evidence = (
        f"Final test accuracy at the chosen lr is {_accuracy(ours)} for {method_label(ours_key)} "
        f"(n = {len(ours)}) against "
        + " and ".join(parts)
        + _all_below_warm_start(runs, chosen, (ours_key, *baselines))
    )
    if "worse" in outcomes:
        return FAILS, evidence + "."
    if None in outcomes:
        why = f"{method_label(ours_key)} has {len(ours)}, " + ", ".join(short)
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
    for key in method_order(None, runs):
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


def _peaks(runs: Sequence[dict], key: str, *, measured: bool) -> list[float]:
    """Peak memory of ``key``'s ok runs that did (``measured``) or did not run the
    gradient-statistics callback: its own memory (float64 statistics buffers) counts in the
    step after each measurement, so its runs' peaks are not the training step's alone."""
    return [
        r["peak_memory_gib"]
        for r in runs
        if r["method"] == key
        and is_ok(r)
        and r.get("peak_memory_gib") is not None
        and bool(r.get("grad_stats_csv")) == measured
    ]


def claim_memory_flat(
    runs: Sequence[dict], probe: dict | None = None, system: dict | None = None
) -> tuple[str, str]:
    """Claim 4: BGPO's mean peak memory at n_t = 16 over n_t = 1, holds at a ratio <= 1.10,
    with the step-time ratio as the cost.

    Like for like: only runs without the gradient-statistics callback count (ok runs, every
    lr and seed); where every n_t = 16 run ran it, the probe's n_t = 16 run (which does not)
    stands in, and the callback's runs are named apart.
    """

    def values(key: str, field: str) -> list[float]:
        return [
            r[field] for r in runs if r["method"] == key and is_ok(r) and r.get(field) is not None
        ]

    mem_1, mem_16 = (
        _peaks(runs, "bgpo_nt1", measured=False),
        _peaks(runs, "bgpo_nt16", measured=False),
    )
    measured_16 = _peaks(runs, "bgpo_nt16", measured=True)
    source_16 = f"mean over {_runs(len(mem_16))}"
    probed = (probe or {}).get("bgpo_nt16_peak_gib")
    if not mem_16 and isinstance(probed, int | float):
        mem_16, source_16 = [probed], "the probe's run"
    time_1, time_16 = values("bgpo_nt1", "step_s"), values("bgpo_nt16", "step_s")
    probe_clause = _probe_clause(probe)
    if not mem_1 or not mem_16 or not mean_or_none(mem_1):
        return INCONCLUSIVE, (
            f"No peak memory recorded for BGPO at both n_t = 1 and 16 without the "
            f"gradient-statistics callback ({len(mem_1)} and {len(mem_16)} runs with memory)"
            f"{probe_clause}."
        )
    ratio = mean_or_none(mem_16) / mean_or_none(mem_1)
    flat = ratio <= MEMORY_FLAT_RATIO
    if time_1 and time_16 and mean_or_none(time_1):
        slower = mean_or_none(time_16) / mean_or_none(time_1)
        cost = (
            f", at {slower:.2f}× the time per rollout batch "
            f"({mean_or_none(time_16):.2f} vs {mean_or_none(time_1):.2f} s)"
        )
        if slower > SMALL_TIME_RATIO:
            cost += "; the memory part holds, but" if flat else "; and"
            cost += (
                " that time is not a small cost: the n_t likelihood passes dominate a step of "
                "this small model"
            )
    else:
        cost = ", with no step time recorded for both"
    shared = (system or {}).get("concurrent_runs")
    if isinstance(shared, int) and shared > 1:
        cost += f" (timed with up to {shared} runs sharing the device)"
    callback = ""
    if measured_16:
        callback = (
            f"; the n_t = 16 runs that also ran the gradient-statistics callback peak at "
            f"{mean_or_none(measured_16):.2f} GiB (mean over {_runs(len(measured_16))}), the "
            "callback's own memory included"
        )
    sentence = (
        f"Without the gradient-statistics callback, BGPO's peak memory at n_t = 16 is "
        f"{ratio:.2f}× that at n_t = 1 ({mean_or_none(mem_16):.2f} vs "
        f"{mean_or_none(mem_1):.2f} GiB; n_t = 16: {source_16}, n_t = 1: mean over "
        f"{_runs(len(mem_1))})"
        f"{cost}{callback}{probe_clause}."
    )
    return (HOLDS if flat else FAILS), sentence


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
        warm = mean_or_none([(warm_point(r) or {}).get("test") for r in runs if is_ok(r)])
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
    final = mean_or_none(final_tests(runs, chosen, "bgpo_nt16"))
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
