"""What a decimal in an answer stands for: an exact number, or an approximation of an exact one.

math-verify rounds floats to 6 decimal places before comparing them, so 0.0000002 equals
0.0000001 and every other answer that small. Here a written decimal is the exact rational it
spells (0.0000002 is 1/5000000), compared exactly with other rationals, so 9.9999999 is not 10.
A decimal can only approximate a value that no decimal writes exactly (1/3, pi, sqrt 2): when
the other side holds such a value within a relative :data:`REL_TOL`, the decimal is replaced
by it, so 0.333333 matches 1/3 but 0.33 does not.
"""

from __future__ import annotations

from typing import Any

import sympy

# Rounding to six significant digits errs by at most 5e-6 relative (1.41421 for sqrt 2).
REL_TOL = sympy.Rational(5, 10**6)
# Enough digits to decide the tolerance for values a reference can hold.
_DIGITS = 30
# Candidates taken from one side; an answer of <= 500 characters has far fewer.
_MAX_VALUES = 64


def _sympy_items(items: list[Any]) -> list[Any]:
    return [x for x in items if isinstance(x, (sympy.Basic, sympy.MatrixBase))]


def _has_float(obj: Any) -> bool:
    return isinstance(obj, (sympy.Basic, sympy.MatrixBase)) and obj.has(sympy.Float)


def _terminates(value: sympy.Rational) -> bool:
    """Whether a decimal writes ``value`` exactly (its denominator is 2^a 5^b)."""
    q = int(value.q)
    for p in (2, 5):
        while q % p == 0:
            q //= p
    return q == 1


def _nodes(obj: Any) -> list[Any]:
    if isinstance(obj, sympy.MatrixBase) and not isinstance(obj, sympy.Basic):
        return [node for entry in obj for node in sympy.preorder_traversal(entry)]
    return list(sympy.preorder_traversal(obj))


def approximable_values(items: list[Any]) -> list[tuple[Any, Any]]:
    """Exact real values in the parses that no decimal writes: ``(expression, numeric value)``.

    Numeric values are exact for rationals and 30-digit floats otherwise.
    """
    found: dict[Any, Any] = {}
    for item in _sympy_items(items):
        for node in _nodes(item):
            if len(found) >= _MAX_VALUES:
                return list(found.items())
            if node in found or not isinstance(node, sympy.Expr) or isinstance(node, sympy.Float):
                continue
            if not node.is_number or node.has(sympy.Float):
                continue
            if isinstance(node, sympy.Rational):
                if not _terminates(node):
                    found[node] = node
                continue
            value = node.evalf(_DIGITS)
            if isinstance(value, sympy.Float) and value != 0:
                found[node] = value
    return list(found.items())


def _decimal(value: sympy.Float) -> sympy.Basic:
    # str() spells the decimal as parsed (0.1 -> "0.100000000000000"), unlike the binary value.
    try:
        return sympy.Rational(str(value))
    except (TypeError, ValueError):  # inf or nan: not a decimal
        return value


def _stand_in(value: sympy.Float, values: list[tuple[Any, Any]]) -> Any:
    decimal = _decimal(value)
    if not isinstance(decimal, sympy.Rational):
        return decimal
    for expr, number in values:
        for sign in (1, -1):
            if abs(decimal - sign * number) <= REL_TOL * abs(number):
                return sign * expr
    return decimal


def exact_decimals(obj: Any, values: list[tuple[Any, Any]]) -> Any:
    """``obj`` with each float replaced by the exact value it approximates, else its decimal.

    Args:
        obj: A parse item: a sympy object, a matrix, or a string (returned as is).
        values: :func:`approximable_values` of the other side.
    """
    if not _has_float(obj):
        return obj
    return obj.xreplace({f: _stand_in(f, values) for f in obj.atoms(sympy.Float)})


def align_decimals(gold: list[Any], guess: list[Any]) -> tuple[list[Any], list[Any]]:
    """Both parse lists with decimals made exact, each against the other's exact values."""
    if not any(_has_float(x) for x in gold + guess):
        return gold, guess
    gold_values = approximable_values(gold) if any(_has_float(x) for x in guess) else []
    guess_values = approximable_values(guess) if any(_has_float(x) for x in gold) else []
    return (
        [exact_decimals(x, guess_values) for x in gold],
        [exact_decimals(x, gold_values) for x in guess],
    )
