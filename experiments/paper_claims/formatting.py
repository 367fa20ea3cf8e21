"""Text helpers shared by the report's modules: one-line messages and percentages."""

from __future__ import annotations


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines too) as one space."""
    return " ".join(str(text).split())


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal; "–" for None."""
    return "–" if value is None else f"{100 * value:.1f}"


def pct_pm(mean: float | None, std: float | None) -> str:
    """Mean ± std in percent: "45.2 ± 1.3"; "45.2 ± –" for one seed; "–" without data."""
    if mean is None:
        return "–"
    return f"{pct(mean)} ± {pct(std)}"
