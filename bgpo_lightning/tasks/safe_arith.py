"""Safe evaluation of untrusted arithmetic text (model completions) without ``eval``.

Two evaluators share one parser (``ast.parse``, the front end ``eval`` itself uses, so they
accept and refuse exactly the syntax ``eval`` does): :func:`evaluate` computes exact
fractions of a small grammar; :func:`evaluate_python` reproduces what ``eval`` would return
for arithmetic, Python's int/float/complex rules included, with bounds instead of hangs.
"""

from __future__ import annotations

import ast
import math
import operator
from fractions import Fraction
from typing import Any

# Bounds keep parsing and evaluation cheap on adversarial input; real answers are far shorter.
MAX_LENGTH = 200
MAX_DEPTH = 64

_BINARY_OPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


def evaluate(expression: str) -> Fraction:
    """Evaluates ``+ - * /``, parentheses, unary minus and numeric literals, exactly.

    Anything else (names, calls, attributes, ``**``, ``//``, ``%``, comparisons, ...) is
    rejected. Integer and decimal literals become exact fractions, so no rounding or float
    overflow occurs.

    Args:
        expression: The arithmetic text.

    Returns:
        The exact value.

    Raises:
        ValueError: If the text is too long, nested too deep, not valid Python syntax, or uses
            anything beyond the allowed arithmetic.
        ZeroDivisionError: On division by zero.
    """
    if len(expression) > MAX_LENGTH:
        raise ValueError(f"expression longer than {MAX_LENGTH} characters")
    return _eval(_parse(expression.strip()), depth=0)


def _parse(expression: str) -> ast.expr:
    try:
        return ast.parse(expression, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise ValueError(f"not an arithmetic expression: {err}") from None


def _eval(node: ast.AST, depth: int) -> Fraction:
    if depth > MAX_DEPTH:
        raise ValueError(f"expression nested deeper than {MAX_DEPTH}")
    if isinstance(node, ast.Constant):
        # bool is an int subclass; complex (e.g. "2j") and strings are not numbers here.
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ValueError(f"unsupported constant {node.value!r}")
        if not math.isfinite(node.value):  # e.g. "1e999" parses to inf
            raise ValueError(f"non-finite constant {node.value!r}")
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
        left = _eval(node.left, depth + 1)
        right = _eval(node.right, depth + 1)
        return _BINARY_OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand, depth + 1)
    raise ValueError(f"unsupported syntax {type(node).__name__}")


# evaluate_python's bounds. Integers beyond MAX_BITS bits are refused rather than computed:
# "99**99**99" would make eval run until memory runs out. A Countdown answer can only hit its
# target through such a value if it cancels back down, e.g. "2**200000//2**199999".
PYTHON_MAX_LENGTH = 100_000
MAX_BITS = 100_000

_PYTHON_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
}
_UNARY_OPS = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def evaluate_python(expression: str) -> Any:
    """What ``eval(expression)`` returns for arithmetic, computed without ``eval``.

    Numeric literals, ``+ - * / // **``, unary ``+ -`` and parentheses are evaluated with
    Python's own operators on int/float/complex values, so results are bit-identical to
    ``eval``'s (e.g. ``(-8)**.5`` is complex, ``7/2`` a float). Everything else is refused.
    Like ``eval`` of a string, leading spaces and tabs are ignored.

    Args:
        expression: The arithmetic text.

    Returns:
        An int, float or complex.

    Raises:
        ValueError: If the text is longer than :data:`PYTHON_MAX_LENGTH`, not valid syntax,
            uses anything beyond that arithmetic, or an integer would exceed
            :data:`MAX_BITS` bits.
        ArithmeticError: Where ``eval`` raises one (division by zero, float overflow).
    """
    if len(expression) > PYTHON_MAX_LENGTH:
        raise ValueError(f"expression longer than {PYTHON_MAX_LENGTH} characters")
    return _eval_python(_parse(expression.lstrip(" \t")), depth=0)


def _eval_python(node: ast.AST, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError(f"expression nested deeper than {MAX_DEPTH}")
    # Unary chains ("- - -3") are walked in a loop: eval accepts ~1000 of them.
    signs = []
    while isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPS:
        signs.append(_UNARY_OPS[type(node.op)])
        node = node.operand
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float | complex):
            raise ValueError(f"unsupported constant {node.value!r}")
        value = _checked(node.value)
    elif isinstance(node, ast.BinOp) and type(node.op) in _PYTHON_OPS:
        left = _eval_python(node.left, depth + 1)
        right = _eval_python(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        value = _checked(_PYTHON_OPS[type(node.op)](left, right))
    else:
        raise ValueError(f"unsupported syntax {type(node).__name__}")
    for sign in reversed(signs):
        value = sign(value)
    return value


def _check_power(base: Any, exponent: Any) -> None:
    """Refuses an integer power before computing it when its result exceeds MAX_BITS bits."""
    if type(base) is not int or type(exponent) is not int or exponent <= 0:
        return  # float/complex powers are constant time; negative exponents give floats
    # |base| >= 2**(bits - 1), so the result has at least (bits - 1) * exponent bits.
    if (abs(base).bit_length() - 1) * exponent > MAX_BITS:
        raise ValueError(f"integer power beyond {MAX_BITS} bits")


def _checked(value: Any) -> Any:
    if type(value) is int and value.bit_length() > MAX_BITS:
        raise ValueError(f"integer beyond {MAX_BITS} bits")
    return value
