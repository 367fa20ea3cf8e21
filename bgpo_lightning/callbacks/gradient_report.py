"""Where gradient statistics go: a CSV that grows over a run, a figure, a printed table."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

#: One row per (step, objective, n_t); ``cosine_of_mean`` is an extra after the fixed columns.
COLUMNS = (
    "step",
    "objective",
    "n_t",
    "repeats",
    "mean_std",
    "bias",
    "cosine",
    "golden_n_t",
    "num_params",
    "seconds",
    "cosine_of_mean",
)


def append_csv(path: str | Path, rows: Sequence[dict]) -> Path:
    """Appends ``rows`` to the CSV at ``path``, writing the header when the file is new."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)
    return path


def statistics_figure(rows: Sequence[dict]) -> Figure:
    """Spread and bias against n_t, log-log, one line per objective.

    Built without pyplot (no global figure registry, no GUI backend): it renders with Agg.
    A dashed ``1/sqrt(n_t)`` guide through the first objective's first point shows the rate
    of an estimator whose samples are independent.
    """
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    panels = figure.subplots(1, 2)
    objectives = list(dict.fromkeys(row["objective"] for row in rows))
    # On-policy BGPO and VRPO-OL coincide: vary the style so every line stays visible.
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")]
    for panel, key, label in (
        (panels[0], "mean_std", "mean per-parameter std"),
        (panels[1], "bias", "||mean_R g - g_golden|| / ||g_golden||"),
    ):
        for index, objective in enumerate(objectives):
            points = sorted((r["n_t"], r[key]) for r in rows if r["objective"] == objective)
            marker, line = styles[index % len(styles)]
            panel.plot(
                [n for n, _ in points],
                [v for _, v in points],
                marker=marker,
                linestyle=line,
                fillstyle="full" if index == 0 else "none",
                label=objective,
            )
            if index == 0 and points:
                first_n, first_value = points[0]
                guide = [first_value * (first_n / n) ** 0.5 for n, _ in points]
                panel.plot(
                    [n for n, _ in points], guide, color="grey", linestyle=":", label="1/sqrt(n_t)"
                )
        panel.set_xscale("log", base=2)
        panel.set_yscale("log")
        panel.set_xlabel("n_t (MC samples per response)")
        panel.set_ylabel(label)
        panel.grid(True, which="both", alpha=0.3)
        panel.legend(fontsize="small")
    if rows:
        first = rows[0]
        figure.suptitle(
            f"step {first['step']}: R = {first['repeats']} repeats, "
            f"golden n_t = {first['golden_n_t']}, {first['num_params']} parameters"
        )
    return figure


def format_table(rows: Sequence[dict]) -> str:
    """A fixed-width text table of the rows, for a terminal or a log."""
    header = (
        f"{'objective':<10} {'n_t':>5} {'mean_std':>11} {'bias':>9} {'cosine':>8} "
        f"{'cos(mean)':>9} {'seconds':>8}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['objective']:<10} {row['n_t']:>5} {row['mean_std']:>11.4e} "
            f"{row['bias']:>9.4f} {row['cosine']:>8.4f} {row['cosine_of_mean']:>9.4f} "
            f"{row['seconds']:>8.2f}"
        )
    return "\n".join(lines)
