"""The study's rows as a CSV, a Markdown table and a figure."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

#: CSV columns; an n/a cell has "n/a" in every metric and the estimator's reason in ``note``.
COLUMNS = (
    "estimator",
    "budget",
    "status",
    "elbo_var",
    "exact_elbo_var",
    "elbo_bias",
    "elbo_bias_se",
    "grad_cosine",
    "grad_bias",
    "grad_mean_std",
    "repeats",
    "seconds",
    "note",
)
METRICS = COLUMNS[3:12]
NA = "n/a"


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    """All rows, n/a cells included, to ``path`` (replaced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, NA) for key in COLUMNS})


def measured(rows: Sequence[dict]) -> list[dict]:
    """The rows of cells that were measured (not n/a)."""
    return [row for row in rows if row["status"] == "ok"]


def markdown_table(rows: Sequence[dict], short_length: int) -> str:
    """One line per (estimator, budget); n/a where the estimator cannot spend the budget."""
    lines = [
        "| estimator | forwards | ELBO var (L=16) | ELBO var (L="
        f"{short_length}) | ELBO bias vs exact (L={short_length}) | grad cosine | grad bias |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["status"] != "ok":
            cells = [NA] * 5
        else:
            cells = [
                f"{row['elbo_var']:.3e}",
                f"{row['exact_elbo_var']:.3e}",
                f"{row['elbo_bias']:+.2e} ± {row['elbo_bias_se']:.1e}",
                f"{row['grad_cosine']:.3f}",
                f"{row['grad_bias']:.3f}",
            ]
        lines.append(f"| {row['estimator']} | {row['budget']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(rows: Sequence[dict], title: str) -> Figure:
    """ELBO variance, gradient bias and cosine against the budget, one line per estimator.

    Built without pyplot (no global figure state); variance and bias on log-log axes, the
    cosine on a log-linear one (it can be near or below zero).
    """
    fig = Figure(figsize=(13, 4), layout="constrained")
    panels = fig.subplots(1, 3)
    names = list(dict.fromkeys(row["estimator"] for row in rows))
    markers = "osD^v*"
    for panel, key, label, log_y in (
        (panels[0], "elbo_var", "ELBO variance per response (L=16)", True),
        (panels[1], "grad_bias", "||mean_R g - g_golden|| / ||g_golden||", True),
        (panels[2], "grad_cosine", "mean cosine(g, g_golden)", False),
    ):
        for index, name in enumerate(names):
            points = sorted((r["budget"], r[key]) for r in measured(rows) if r["estimator"] == name)
            if points:
                panel.plot(
                    *zip(*points, strict=True),
                    marker=markers[index % len(markers)],
                    label=name,
                )
        panel.set_xscale("log", base=2)
        budgets = sorted({row["budget"] for row in rows})
        panel.set_xticks(budgets, [str(b) for b in budgets])
        panel.xaxis.set_minor_locator(NullLocator())  # plain budget labels, no 2^k ones
        if log_y:
            panel.set_yscale("log")
        panel.set_xlabel("forwards per response")
        panel.set_ylabel(label)
        panel.grid(True, which="both", alpha=0.3)
    panels[0].legend(fontsize="small")
    fig.suptitle(title)
    return fig
