"""The generated "which estimator wins at which budget" paragraph."""

from __future__ import annotations

from collections.abc import Sequence

from experiments.estimator_study.grid import ELBO_ESTIMATORS
from experiments.estimator_study.report import measured


def _best(rows: Sequence[dict], key: str, highest: bool = False) -> dict:
    return (max if highest else min)(rows, key=lambda row: row[key])


def _forwards(budget: int) -> str:
    return f"{budget} forward{'' if budget == 1 else 's'} per response"


def cells(rows: Sequence[dict], budget: int, elbo_only: bool = False) -> list[dict]:
    """The measured rows at ``budget`` (only the ELBO estimators' when ``elbo_only``)."""
    return [
        row
        for row in measured(rows)
        if row["budget"] == budget and (not elbo_only or row["estimator"] in ELBO_ESTIMATORS)
    ]


def lowest_variance(rows: Sequence[dict], budget: int, key: str = "elbo_var") -> str | None:
    """The ELBO estimator with the lowest ELBO variance at ``budget`` (None if none ran).

    Only ELBO estimators compete: a lower spread around another quantity is no win.
    ``key`` is ``elbo_var`` (the main batch) or ``exact_elbo_var`` (the exact batch).
    """
    elbo = cells(rows, budget, elbo_only=True)
    return _best(elbo, key)["estimator"] if elbo else None


def lowest_exact_variance(rows: Sequence[dict], budget: int) -> str | None:
    """:func:`lowest_variance` on the exact batch."""
    return lowest_variance(rows, budget, "exact_elbo_var")


def budget_verdict(rows: Sequence[dict], budget: int) -> str:
    """Who wins at one budget: lowest ELBO variance, best cosine, lowest gradient bias.

    The gradient numbers are against the ELBO gradient, so every estimator competes there.
    """
    here = cells(rows, budget)
    if not here:
        return f"With {_forwards(budget)} no estimator was measured."
    parts = []
    low, short = lowest_variance(rows, budget), lowest_exact_variance(rows, budget)
    if low is not None:
        value = next(r["elbo_var"] for r in here if r["estimator"] == low)
        text = f"lowest ELBO variance {low} ({value:.3e}"
        if short != low:  # the two batches disagree: say so
            value = next(r["exact_elbo_var"] for r in here if r["estimator"] == short)
            text += f"; on the exact batch {short}, {value:.3e}"
        parts.append(text + ")")
    cosine, bias = _best(here, "grad_cosine", highest=True), _best(here, "grad_bias")
    parts.append(f"best gradient cosine {cosine['estimator']} ({cosine['grad_cosine']:.3f})")
    parts.append(f"lowest gradient bias {bias['estimator']} ({bias['grad_bias']:.3f})")
    return f"With {_forwards(budget)}: " + "; ".join(parts) + "."


def best_cosine(rows: Sequence[dict], budget: int) -> str | None:
    """The estimator whose gradient is closest in direction to the golden at ``budget``."""
    here = cells(rows, budget)
    return _best(here, "grad_cosine", highest=True)["estimator"] if here else None


def tally(rows: Sequence[dict], budgets: Sequence[int]) -> str:
    """How many budgets each estimator wins, for ELBO variance and for gradient cosine."""
    parts = []
    for what, winner in (
        ("lowest ELBO variance", lowest_variance),
        ("on the exact batch", lowest_exact_variance),
        ("best gradient cosine", best_cosine),
    ):
        counts: dict[str, int] = {}
        for budget in budgets:
            name = winner(rows, budget)
            if name is not None:
                counts[name] = counts.get(name, 0) + 1
        if counts:
            parts.append(f"{what}: " + ", ".join(f"{n} {c}" for n, c in counts.items()))
    return f"Budgets won (of {len(budgets)}): " + "; ".join(parts) + "." if parts else ""


def other_targets(rows: Sequence[dict]) -> str:
    """Per non-ELBO estimator: how often its spread is below the ELBO winner's, and its bias."""
    sentences = []
    for name in sorted({r["estimator"] for r in measured(rows)} - set(ELBO_ESTIMATORS)):
        own = {r["budget"]: r for r in measured(rows) if r["estimator"] == name}
        below = 0
        for budget, row in own.items():
            elbo = cells(rows, budget, elbo_only=True)
            below += bool(elbo) and row["elbo_var"] < _best(elbo, "elbo_var")["elbo_var"]
        biases = [row["elbo_bias"] for row in own.values()]
        sentences.append(
            f"{name}'s ELBO-estimate spread is below the best ELBO estimator's at {below} of "
            f"{len(own)} budgets, but around another quantity: its bias against the exact ELBO "
            f"is between {min(biases):+.3f} and {max(biases):+.3f}."
        )
    return " ".join(sentences)


def biased_estimators(rows: Sequence[dict], threshold: float = 3.0) -> str:
    """In how many budgets each estimator's ELBO bias exceeds ``threshold`` standard errors."""
    parts = []
    for name in dict.fromkeys(row["estimator"] for row in measured(rows)):
        own = [row for row in measured(rows) if row["estimator"] == name]
        off = sum(abs(r["elbo_bias"]) > threshold * r["elbo_bias_se"] for r in own)
        parts.append(f"{name} {off} of {len(own)}")
    if not parts:
        return ""
    return (
        f"Budgets where the ELBO bias on the exact batch exceeds {threshold:g} standard errors: "
        + ", ".join(parts)
        + "."
    )


def verdict(rows: Sequence[dict]) -> str:
    """The whole paragraph: per budget, the tally, the non-ELBO estimators, the biased ones."""
    budgets = sorted({row["budget"] for row in rows})
    lines = ["ELBO variances are the main batch's unless the exact batch is named."]
    lines += [budget_verdict(rows, budget) for budget in budgets]
    lines += [tally(rows, budgets), other_targets(rows), biased_estimators(rows)]
    return " ".join(line for line in lines if line)
