"""Bounds on the work of grading an untrusted math answer: a thread-safe time limit and size checks.

Why not math-verify's own timeouts: they use ``signal.alarm``, which raises outside the main
thread and replaces the process's SIGALRM handler. :func:`time_limit` instead raises
:class:`GradingTimeout` in the grading thread from a watchdog thread (:mod:`math_watchdog`), in
any thread.

Like a signal handler, that asynchronous exception only lands between Python bytecodes, so it
cannot stop one long C call. The long C calls sympy makes on adversarial answers are exact
big-integer powers (``9^{9^{9}}`` evaluates ``9**387420489`` in one call, for minutes and
gigabytes), so :func:`integer_bits_bound` bounds the integers an answer can produce before it
is compared, and :func:`is_small_text` refuses long or deeply nested text before it is parsed.

These checks are the cheap first line; what they miss is bounded by running the grading in a
worker process that is killed at the limit (:mod:`math_batch`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sympy

from bgpo_lightning.tasks.math_watchdog import set_async_exc, watchdog

# Exact integers up to this many bits cost milliseconds per operation (3**165000 takes ~10 ms;
# a 16-million-bit power takes 15 s). Real answers stay far below: 2^{2005} has 2005 bits.
MAX_INTEGER_BITS = 2**18

_HUGE = math.inf
_GROWING = (sympy.factorial, sympy.factorial2, sympy.subfactorial, sympy.gamma)
_OPENERS = frozenset("{([")
_CLOSERS = frozenset("})]")


class GradingTimeout(BaseException):
    """Raised inside a thread whose :func:`time_limit` ran out.

    A ``BaseException``, so that the ``except Exception`` clauses in sympy and math-verify do
    not swallow it.
    """


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raises :class:`GradingTimeout` in the calling thread once the block runs ``seconds``.

    Works in any thread. The exception can surface anywhere until the ``with`` statement
    ends, so catch it around the whole statement; it never surfaces after the statement.

    Args:
        seconds: The time budget; ``<= 0`` means no limit.
    """
    if seconds <= 0:
        yield
        return
    token = watchdog().arm(seconds, GradingTimeout)
    try:
        yield
    finally:
        if watchdog().disarm(token):
            set_async_exc(threading.get_ident(), None)  # Fired but not yet raised: drop it.


def nesting_depth(text: str) -> int:
    """Deepest nesting of ``{``, ``(`` and ``[`` counted together (never below zero)."""
    depth = deepest = 0
    for ch in text:
        if ch in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif ch in _CLOSERS:
            depth = max(depth - 1, 0)
    return deepest


def is_small_text(text: str, max_chars: int, max_nesting: int) -> bool:
    """True if ``text`` is non-blank, at most ``max_chars`` long and ``max_nesting`` deep."""
    if not text.strip() or len(text) > max_chars:
        return False
    return nesting_depth(text) <= max_nesting


def _two_to(bits: float) -> float:
    return 2.0**bits if bits < 1000 else _HUGE


def integer_bits_bound(expr: Any, index_bits: Mapping[Any, float] | None = None) -> float:
    """Upper bound on the bit length of exact numbers sympy may compute when evaluating ``expr``.

    Symbols count as small numbers (1 bit), except the index of a sum or product, which counts
    as large as its limits: ``\\prod_{k=1}^{8191} 3^{k}`` grows with ``k``. Powers, factorials
    and products over ranges grow the bound; other functions, relations and containers take the
    largest bound of their arguments. Floats count by their binary exponent.

    Args:
        expr: A sympy object (or a matrix, tuple or list of them); other values count 0.
        index_bits: Bits of the indices of the enclosing sums and products.

    Returns:
        The bound in bits, ``inf`` when it is astronomically large.
    """
    index_bits = index_bits or {}
    if isinstance(expr, (list, tuple)) or (
        isinstance(expr, sympy.MatrixBase) and not isinstance(expr, sympy.Basic)
    ):
        return max((integer_bits_bound(x, index_bits) for x in expr), default=0.0)
    if not isinstance(expr, sympy.Basic):
        return 0.0
    if isinstance(expr, sympy.Rational):
        return float(max(expr.p.bit_length(), expr.q.bit_length()))
    if isinstance(expr, sympy.Float):
        _, _, exponent, bit_count = expr._mpf_
        return float(max(abs(exponent + bit_count), 1))
    if not expr.args:  # Symbols, pi, E, I, infinities, ...
        return index_bits.get(expr, 1.0)
    if isinstance(expr, (sympy.Product, sympy.Sum)):
        return _range_bits(expr, index_bits)
    children = [integer_bits_bound(arg, index_bits) for arg in expr.args]
    biggest = max(children)
    if isinstance(expr, sympy.Add):
        return biggest + math.log2(len(children)) + 1
    if isinstance(expr, sympy.Mul):
        return math.fsum(children)
    if isinstance(expr, sympy.Pow):
        base, exponent = expr.args
        if base in (sympy.S.Zero, sympy.S.One, sympy.S.NegativeOne):
            return biggest
        size = abs(exponent.p) if isinstance(exponent, sympy.Rational) else _two_to(children[1])
        return max(biggest, children[0] * size)
    if isinstance(expr, sympy.exp):
        return max(biggest, 1.5 * _two_to(children[0]))
    if isinstance(expr, _GROWING):
        n = _two_to(children[0])
        return max(biggest, n * max(math.log2(n), 1.0) if n < _HUGE else _HUGE)
    if isinstance(expr, sympy.binomial):
        return max(biggest, _two_to(children[0]))
    return biggest + 1


def _range_bits(expr: sympy.Product | sympy.Sum, index_bits: Mapping[Any, float]) -> float:
    """Terms times the number of terms, each index as large as its limits."""
    inner = dict(index_bits)
    limits = 0.0
    for index, *ends in expr.limits:
        bits = max((integer_bits_bound(end, inner) for end in ends), default=1.0)
        inner[index] = bits
        limits = max(limits, bits)
    count = _two_to(limits + 1)
    term = integer_bits_bound(expr.function, inner)
    return term * count if isinstance(expr, sympy.Product) else term + limits + 1
