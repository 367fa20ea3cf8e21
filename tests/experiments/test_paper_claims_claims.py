"""The paper-claims verdicts on synthetic result files: each claim's verdicts and evidence."""

from __future__ import annotations

import math
import statistics

import pytest

from experiments.paper_claims import claims
from tests.experiments.paper_claims_helpers import LR_MID, loaded, seeds_of, write_run


@pytest.mark.parametrize(
    ("ours", "grpo", "vrpo", "verdict"),
    [
        ([0.60, 0.62, 0.64], [0.40, 0.42, 0.44], [0.50, 0.51, 0.52], claims.HOLDS),
        ([0.60, 0.62, 0.64], [0.40, 0.42, 0.44], [0.70, 0.72, 0.74], claims.FAILS),
        ([0.60, 0.62, 0.64], [0.40, 0.42, 0.44], [0.50, 0.62, 0.74], claims.INCONCLUSIVE),
        ([0.60], [0.40, 0.42, 0.44], [0.50, 0.51, 0.52], claims.INCONCLUSIVE),
        ([0.60, 0.62, 0.64], [0.40, 0.42, 0.44], [0.50], claims.INCONCLUSIVE),
    ],
)
def test_claim_1_verdicts(tmp_path, ours, grpo, vrpo, verdict):
    seeds_of(tmp_path, "sudoku", "bgpo_nt16", ours)
    seeds_of(tmp_path, "sudoku", "diffu_grpo", grpo)
    seeds_of(tmp_path, "sudoku", "vrpo_ol", vrpo)
    got, sentence = claims.claim_beats_baselines(*loaded(tmp_path))
    assert got == verdict
    mean = statistics.fmean(ours)
    assert f"{100 * mean:.1f}" in sentence and "diffu-GRPO" in sentence and "\n" not in sentence
    if min(len(ours), len(vrpo)) < 2:
        assert "at least 2 seeds" in sentence


@pytest.mark.parametrize(
    ("by_n_t", "verdict"),
    [
        ({1: [0.30, 0.31, 0.29], 4: [0.40, 0.41, 0.39], 16: [0.50, 0.52, 0.49]}, claims.HOLDS),
        ({1: [0.50, 0.51, 0.49], 4: [0.40, 0.41, 0.39], 16: [0.30, 0.32, 0.29]}, claims.FAILS),
        (
            {1: [0.30, 0.50, 0.40], 4: [0.50, 0.30, 0.40], 16: [0.35, 0.45, 0.40]},
            claims.INCONCLUSIVE,
        ),
        ({1: [0.30], 16: [0.50]}, claims.INCONCLUSIVE),
    ],
)
def test_claim_2_verdicts(tmp_path, by_n_t, verdict):
    for n_t, finals in by_n_t.items():
        seeds_of(tmp_path, "sudoku", f"bgpo_nt{n_t}", finals)
    seeds_of(tmp_path, "sudoku", "bgpo_sdmc", [0.9, 0.9, 0.9])  # not an n_t row
    got, sentence = claims.claim_accuracy_rises_with_n_t(*loaded(tmp_path))
    assert got == verdict
    if verdict != claims.INCONCLUSIVE:
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
        ({10: FALLING, 20: FALLING}, claims.HOLDS),
        ({10: RISING, 20: RISING, 30: FALLING}, claims.FAILS),
        ({10: FALLING, 20: FALLING, 30: RISING}, claims.INCONCLUSIVE),
    ],
)
def test_claim_3_verdicts_from_the_csv(tmp_path, steps, verdict):
    folder = write_run(
        tmp_path, "sudoku", "bgpo_nt16", LR_MID, 0, grad_stats_csv="gradient_statistics.csv"
    )
    write_grad_csv(folder, steps)
    write_run(tmp_path, "sudoku", "bgpo_nt1", LR_MID, 0, grad_stats_csv="absent.csv")
    got, sentence = claims.claim_gradient_noise_falls(loaded(tmp_path)[0])
    assert got == verdict
    falls = sum(1 for s in steps.values() if s is FALLING)
    assert f"In {falls} of {len(steps)} measurements (1 run)" in sentence
    assert "n_t = 16 vs 1" in sentence
    if verdict == claims.HOLDS:
        assert "std 0.25, bias 0.25" in sentence


def test_claim_3_without_statistics_is_inconclusive(tmp_path):
    write_run(tmp_path, "sudoku", "bgpo_nt16", LR_MID, 0)
    assert claims.claim_gradient_noise_falls(loaded(tmp_path)[0])[0] == claims.INCONCLUSIVE


@pytest.mark.parametrize(
    ("peak_16", "verdict"),
    [(2.1, claims.HOLDS), (3.0, claims.FAILS), (None, claims.HOLDS)],  # None: the probe's 2.1
)
def test_claim_4_verdicts(tmp_path, peak_16, verdict):
    seeds_of(tmp_path, "sudoku", "bgpo_nt1", [0.3, 0.3], peak=2.0, step=1.0)
    seeds_of(tmp_path, "sudoku", "bgpo_nt16", [0.3, 0.3], peak=peak_16, step=1.5)
    probe = {"bgpo_nt16_peak_gib": 2.1, "vrpo_ol_peak_gib": {"1": 2.0, "2": 3.9}, "vrpo_ol_n_t": 1}
    got, sentence = claims.claim_memory_flat(loaded(tmp_path)[0], probe, {"concurrent_runs": 4})
    assert got == verdict
    assert "3.9 GiB at n_t = 2" in sentence and "VRPO-OL ran at n_t = 1" in sentence
    if peak_16 is not None:
        assert f"{peak_16 / 2.0:.2f}× that at n_t = 1" in sentence
        assert "1.50× the time per rollout batch" in sentence
        assert "not a small cost" not in sentence
    else:
        assert "1.05× that at n_t = 1 (2.10 vs 2.00 GiB; n_t = 16: the probe's run" in sentence


def test_claim_4_says_when_the_time_is_not_a_small_cost(tmp_path):
    seeds_of(tmp_path, "sudoku", "bgpo_nt1", [0.3, 0.3], peak=2.0, step=1.0)
    seeds_of(tmp_path, "sudoku", "bgpo_nt16", [0.3, 0.3], peak=2.0, step=4.5)
    got, sentence = claims.claim_memory_flat(loaded(tmp_path)[0], None, None)
    assert got == claims.HOLDS
    assert "4.50× the time per rollout batch" in sentence and "not a small cost" in sentence


@pytest.mark.parametrize(
    ("finals", "warm", "verdict"),
    [
        ([0.50, 0.52, 0.54], 0.20, claims.HOLDS),
        ([0.22, 0.25, 0.23], 0.20, claims.FAILS),  # a clear gain, far from doubling
        ([0.19, 0.21, 0.22], 0.20, claims.FAILS),  # no clear gain
        ([], 0.20, claims.INCONCLUSIVE),
    ],
)
def test_claim_5_verdicts(tmp_path, finals, warm, verdict):
    seeds_of(tmp_path, "countdown", "bgpo_nt16", finals, warm=(warm, warm))
    seeds_of(tmp_path, "countdown", "diffu_grpo", [0.21, 0.21], warm=(warm, warm))
    runs, chosen = loaded(tmp_path, "countdown")
    got, sentence = claims.claim_countdown_gain(runs, chosen, {"params": 11_000_000})
    assert got == verdict
    assert "11M-parameter model says nothing direct about LLaDA-8B" in sentence
    assert "the paper's 87.5 against the re-run's 10.0" in sentence
    if finals:
        gains = [f - warm for f in finals]
        mean, std = statistics.fmean(gains), statistics.stdev(gains)
        assert f"{100 * mean:+.1f} ± {100 * std:.1f} points" in sentence
        assert f"warm start scores {100 * warm:.1f}%" in sentence
        assert ("a large gain from RL" in sentence) == (verdict == claims.HOLDS)
        top = "BGPO, n_t = 16" if statistics.fmean(finals) > 0.21 else "diffu-GRPO"
        assert f"the best method, {top}, ends at" in sentence


def test_claim_1_says_when_every_run_compared_loses_from_the_warm_start(tmp_path):
    for key, finals in (("bgpo_nt16", [0.22, 0.23]), ("diffu_grpo", [0.25, 0.26])):
        seeds_of(tmp_path, "countdown", key, finals, warm=(0.16, 0.29))
    seeds_of(tmp_path, "countdown", "vrpo_ol", [0.20, 0.21], warm=(0.16, 0.29))
    _, sentence = claims.claim_beats_baselines(*loaded(tmp_path, "countdown"))
    assert "all 6 of these runs end below their warm start's test accuracy (29.0%)" in sentence
    write_run(tmp_path, "countdown", "vrpo_ol", LR_MID, 2, final_test=0.30, warm=(0.16, 0.29))
    _, sentence = claims.claim_beats_baselines(*loaded(tmp_path, "countdown"))
    assert "end below" not in sentence  # one run gained


def test_claim_4_leaves_out_the_gradient_statistics_runs_and_uses_the_probe(tmp_path):
    seeds_of(tmp_path, "sudoku", "bgpo_nt1", [0.3, 0.3], peak=2.0, step=1.0)
    seeds_of(tmp_path, "sudoku", "bgpo_nt16", [0.3, 0.3], peak=2.6, step=1.5,
             grad_stats_csv="gradient_statistics.csv")  # fmt: skip
    probe = {"bgpo_nt16_peak_gib": 2.04}
    got, sentence = claims.claim_memory_flat(loaded(tmp_path)[0], probe, None)
    assert got == claims.HOLDS  # 2.04 / 2.0, where the callback's runs would give 1.30
    assert "1.02× that at n_t = 1 (2.04 vs 2.00 GiB; n_t = 16: the probe's run" in sentence
    assert "callback peak at 2.60 GiB (mean over 2 runs)" in sentence
    # without the probe, no n_t = 16 run without the callback is left to compare
    assert claims.claim_memory_flat(loaded(tmp_path)[0], None, None)[0] == claims.INCONCLUSIVE


def test_claim_4_that_fails_on_memory_does_not_say_the_memory_part_holds(tmp_path):
    seeds_of(tmp_path, "sudoku", "bgpo_nt1", [0.3, 0.3], peak=2.0, step=1.0)
    seeds_of(tmp_path, "sudoku", "bgpo_nt16", [0.3, 0.3], peak=3.0, step=4.5)
    got, sentence = claims.claim_memory_flat(loaded(tmp_path)[0], None, None)
    assert got == claims.FAILS
    assert "memory part holds" not in sentence and "not a small cost" in sentence
