"""Exact Countdown solver: an expression that uses each number once and reaches a target.

Values are exact ``Fraction``s so that e.g. ``(1/3)*3`` reaches 1 without rounding. Every
sub-multiset's reachable values are computed once (all orderings and parenthesizations of
``+ - * /``); the last operation is then solved for its missing operand by dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from itertools import combinations

# An expression's text and the precedence of its top operator, used to add only the
# parentheses that are needed.
_Expr = tuple[str, int]
_ATOM, _MUL, _ADD = 3, 2, 1
_PRECEDENCE = {"+": _ADD, "-": _ADD, "*": _MUL, "/": _MUL}

# Five numbers solve in milliseconds; six would take seconds per unsolvable row.
MAX_NUMBERS = 5


def _combine(left: _Expr, op: str, right: _Expr) -> _Expr:
    prec = _PRECEDENCE[op]
    ltext, lprec = left
    rtext, rprec = right
    if lprec < prec:
        ltext = f"({ltext})"
    # a-(b-c) and a/(b*c) need parentheses on the right even at equal precedence.
    if rprec < prec or (rprec == prec and op in "-/"):
        rtext = f"({rtext})"
    return f"{ltext}{op}{rtext}", prec


def _splits(items: tuple[int, ...]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Unordered splits of a multiset into two non-empty parts (first item always left)."""
    rest = range(1, len(items))
    out = []
    for size in range(len(items) - 1):
        for chosen in combinations(rest, size):
            left = (items[0], *(items[i] for i in chosen))
            right = tuple(items[i] for i in rest if i not in chosen)
            out.append((left, right))
    return out


class _Reachable:
    """Memoized map from a sorted multiset of numbers to ``{value: expression}``."""

    def __init__(self) -> None:
        self._memo: dict[tuple[int, ...], dict[Fraction, _Expr]] = {}

    def __call__(self, items: tuple[int, ...]) -> dict[Fraction, _Expr]:
        items = tuple(sorted(items))
        if items not in self._memo:
            self._memo[items] = self._compute(items)
        return self._memo[items]

    def _compute(self, items: tuple[int, ...]) -> dict[Fraction, _Expr]:
        if len(items) == 1:
            return {Fraction(items[0]): (str(items[0]), _ATOM)}
        values: dict[Fraction, _Expr] = {}
        for left, right in _splits(items):
            for a, ea in self(left).items():
                for b, eb in self(right).items():
                    values.setdefault(a + b, _combine(ea, "+", eb))
                    values.setdefault(a * b, _combine(ea, "*", eb))
                    values.setdefault(a - b, _combine(ea, "-", eb))
                    values.setdefault(b - a, _combine(eb, "-", ea))
                    if b:
                        values.setdefault(a / b, _combine(ea, "/", eb))
                    if a:
                        values.setdefault(b / a, _combine(eb, "/", ea))
        return values


def _finish(a: Fraction, ea: _Expr, target: Fraction, right: dict[Fraction, _Expr]) -> str | None:
    """An expression ``ea op eb`` or ``eb op ea`` equal to ``target`` with ``eb`` from right."""
    # Each candidate: the operand value that would be needed, and how to build the result.
    candidates: list[tuple[Fraction, str, bool]] = [
        (target - a, "+", False),  # a + b
        (a - target, "-", False),  # a - b
        (target + a, "-", True),  # b - a
        (a * target, "/", True),  # b / a
    ]
    if a:
        candidates.append((target / a, "*", False))  # a * b
    if target:
        candidates.append((a / target, "/", False))  # a / b
    for b, op, swap in candidates:
        eb = right.get(b)
        if eb is None or (op == "/" and not (a if swap else b)):
            continue
        return _combine(eb, op, ea)[0] if swap else _combine(ea, op, eb)[0]
    if not a and not target and right:  # 0 * anything
        return _combine(ea, "*", next(iter(right.values())))[0]
    return None


def solve(numbers: Sequence[int], target: int) -> str | None:
    """Finds an arithmetic expression over ``numbers`` (each used once) equal to ``target``.

    Args:
        numbers: The available integers, 1 to :data:`MAX_NUMBERS` of them.
        target: The value to reach.

    Returns:
        An expression with ``+ - * /`` and minimal parentheses, e.g. ``"(3+5)*2"``, or
        ``None`` if no expression reaches the target exactly.
    """
    if not 1 <= len(numbers) <= MAX_NUMBERS:
        raise ValueError(f"solve() takes 1 to {MAX_NUMBERS} numbers, got {len(numbers)}")
    items = tuple(numbers)
    goal = Fraction(target)
    reachable = _Reachable()
    if len(items) == 1:
        return str(items[0]) if items[0] == goal else None
    for left, right in _splits(items):
        right_values = reachable(right)
        for a, ea in reachable(left).items():
            found = _finish(a, ea, goal, right_values)
            if found is not None:
                return found
    return None
