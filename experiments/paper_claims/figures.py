"""The figures: accuracy curves per method at its chosen lr, and the lr sweep."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from experiments.paper_claims import plan
from experiments.paper_claims.results import (
    bgpo_n_t,
    mean_std,
    method_label,
    method_order,
    points_with,
    runs_at,
)


def curve_series(
    runs: Sequence[dict], method: str, lr: float | None, split: str
) -> list[tuple[int, float, float | None, int]]:
    """(batch, mean, std or None, n) of ``split`` accuracy over the ok runs at ``lr``."""
    by_batch: dict[int, list[float]] = {}
    for run in runs_at(runs, method, lr):
        for point in points_with(run, split):
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
    methods = [m for m in method_order(task, runs) if curve_series(runs, m, chosen.get(m), "test")]
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
                label=f"{method_label(key)} (lr {chosen[key]:g}, n = {n})",
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


def plot_sweep(runs: Sequence[dict], task: str, path: str | Path) -> str | None:
    """The learning-rate sweep: one small panel per method, validation accuracy of each
    first-seed run against rollout batches, one line per lr (what the choice is made from).
    Returns None when written, else why not."""
    try:
        from matplotlib import colormaps
        from matplotlib.figure import Figure
    except ImportError:
        return "matplotlib is not installed"
    sweep = [r for r in runs if r.get("seed") == plan.SWEEP_SEED and points_with(r, "val")]
    methods = [m for m in method_order(task, runs) if any(r["method"] == m for r in sweep)]
    if not methods:
        return "no finished sweep runs to plot"
    lrs = sorted({r["lr"] for r in sweep})
    colours = {lr: colormaps["viridis"](i / max(len(lrs) - 1, 1)) for i, lr in enumerate(lrs)}
    columns = min(len(methods), 4)
    rows = -(-len(methods) // columns)
    figure = Figure(figsize=(3.2 * columns, 2.6 * rows + 0.8), layout="constrained")
    panels = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
    for panel, key in zip(panels.flat, methods, strict=False):
        for run in sorted((r for r in sweep if r["method"] == key), key=lambda r: r["lr"]):
            points = points_with(run, "val")
            style = "-" if run["lr"] in plan.LEARNING_RATES else ":"
            panel.plot(
                [p["batch"] for p in points],
                [100 * p["val"] for p in points],
                color=colours[run["lr"]],
                linestyle=style,
                marker="o",
                markersize=3,
                label=f"lr {run['lr']:g}",
            )
        panel.set_title(method_label(key), fontsize="small")
        panel.grid(True, alpha=0.3)
        panel.legend(fontsize="x-small")
    for panel in panels.flat[len(methods) :]:
        panel.set_visible(False)
    figure.supxlabel("rollout batches")
    figure.supylabel("validation accuracy (%)")
    figure.suptitle(f"{task}: learning-rate sweep, seed {plan.SWEEP_SEED} (dotted: off the grid)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return None
