"""VRPO-OL's n_t for the study: the largest that fits the memory BGPO uses at n_t = 16.

VRPO-OL differentiates through the mean of n_t ELBO samples, so it keeps n_t graphs at once;
BGPO backpropagates one sample at a time. Two training batches of each (no evaluation) give
the peak memory; candidates are tried from small to large and stop at the first that does
not fit (more samples only take more memory). Writes ``<root>/<task>/probe.json``.

    python -m experiments.paper_claims.probe --task sudoku
"""

from __future__ import annotations

from pathlib import Path

from experiments.paper_claims.entry import ROOT, task_arguments, write_summary
from experiments.paper_claims.plan import SWEEP_SEED, VRPO_OL_CANDIDATE_N_T, RunKey

PROBE_BATCHES = 2
TOLERANCE = 1.02  # allocator rounding: within 2% of BGPO's peak counts as fitting


def peak_of(root: Path, task: str, method: str, n_t: int, extra: list[str]) -> float | None:
    from experiments.paper_claims.run_one import train

    key = RunKey(task, method, 1e-4, SWEEP_SEED)
    result = train(
        root,
        key,
        overrides=["--trainer.limit_train_batches", str(PROBE_BATCHES), *extra],
        evaluate=False,
        with_gradient_statistics=False,
        directory=root / task / "probe" / f"{method}_nt{n_t}",
        n_t=n_t,
    )
    if result["status"] != "ok":
        raise SystemExit(f"error: probe run {method} n_t={n_t} failed: {result['status']}")
    return result["peak_memory_gib"]


def fits(peak: float | None, bgpo_peak: float | None) -> bool:
    """Whether a measured peak is within ``TOLERANCE`` of BGPO's (False unmeasured)."""
    return None not in (peak, bgpo_peak) and peak <= bgpo_peak * TOLERANCE


def choose_n_t(bgpo_peak: float | None, vrpo_peaks: dict[int, float | None]) -> int:
    """The largest candidate whose peak fits (1 when none does, or when memory was not
    measured, e.g. on a CPU)."""
    return max((n for n, peak in vrpo_peaks.items() if fits(peak, bgpo_peak)), default=1)


def probe(task: str, root: Path = ROOT, extra: list[str] | None = None) -> dict:
    extra = list(extra or [])
    bgpo_peak = peak_of(root, task, "bgpo_nt16", 16, extra)
    vrpo_peaks: dict[int, float | None] = {}
    for n_t in VRPO_OL_CANDIDATE_N_T:
        vrpo_peaks[n_t] = peak_of(root, task, "vrpo_ol", n_t, extra)
        if not fits(vrpo_peaks[n_t], bgpo_peak):
            break
    summary = {
        "bgpo_nt16_peak_gib": bgpo_peak,
        "vrpo_ol_peak_gib": {str(n): peak for n, peak in vrpo_peaks.items()},
        "vrpo_ol_n_t": choose_n_t(bgpo_peak, vrpo_peaks),
        "batches": PROBE_BATCHES,
        "command": f"python -m experiments.paper_claims.probe --task {task}",
    }
    return write_summary(root / task / "probe.json", summary)


def main(argv: list[str] | None = None) -> None:
    task, root, overrides = task_arguments(__doc__, argv)
    probe(task, root, overrides)


if __name__ == "__main__":
    main()
