"""Safe evaluation of untrusted arithmetic text (model completions) without ``eval``."""

from __future__ import annotations

import ast
import math
from fractions import Fraction

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
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as err:
        raise ValueError(f"not an arithmetic expression: {err}") from None
    return _eval(tree.body, depth=0)


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
