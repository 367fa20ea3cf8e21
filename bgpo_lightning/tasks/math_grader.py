"""Mathematical equivalence of a predicted final answer and a reference, through math-verify.

math-verify (latex2sympy2_extended + sympy) parses both sides as LaTeX and compares them as
numbers, expressions, sets, intervals, tuples, matrices or equations; :mod:`math_text`,
:mod:`math_parse` and :mod:`math_numbers` fix what it misreads. ``tests/tasks/test_math_*.py``
list the equivalences accepted and refused.

Grading is bounded twice. In process, :mod:`math_limits` refuses answers that are too long,
too deep or would build huge integers, and a watchdog interrupts long Python loops. Neither can
stop one long C call (a big-integer power), so :func:`is_equivalent` and :func:`are_equivalent`
grade in worker processes killed at the limit (:mod:`math_batch`, :mod:`math_pool`); each
worker runs :func:`is_equivalent_in_process`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from math_verify import verify

from bgpo_lightning.tasks import math_pool
from bgpo_lightning.tasks.math_batch import grade_batch
from bgpo_lightning.tasks.math_limits import (
    MAX_INTEGER_BITS,
    GradingTimeout,
    integer_bits_bound,
    is_small_text,
    time_limit,
)
from bgpo_lightning.tasks.math_numbers import align_decimals
from bgpo_lightning.tasks.math_parse import parse_answer, parse_reference
from bgpo_lightning.tasks.math_text import (
    based_number,
    has_percent,
    number_before_words,
    same_based_number,
    tidy,
)

# The longest MATH/MATH500 reference has 159 characters; a longer prediction is not an answer.
MAX_ANSWER_CHARS = 500
# Deepest bracket nesting ({, ( and [ together) of a prediction; references reach 5.
MAX_NESTING = 20
# Wall-clock budget of one comparison, reference parsing included; real pairs take < 1.5 s.
DEFAULT_TIME_LIMIT = 5.0
# Worker processes grading one batch at once: one per two cores (the trainer keeps the others;
# on a busy machine more workers only contend for the same cores), at most 8.
WORKERS = max(1, min(8, (os.cpu_count() or 1) // 2))

_log = logging.getLogger(__name__)
_warned_in_process = False


def _is_candidate(predicted: str | None, reference: str) -> bool:
    return (
        predicted is not None
        and bool(reference.strip())
        and is_small_text(predicted, MAX_ANSWER_CHARS, MAX_NESTING)
    )


def is_equivalent_in_process(
    predicted: str | None,
    reference: str,
    time_limit_s: float = DEFAULT_TIME_LIMIT,
    numeric: bool = False,
    guards: bool = True,
) -> bool:
    """:func:`is_equivalent` in this process: bounded only by the in-process guards.

    Args:
        predicted, reference, time_limit_s, numeric: As for :func:`is_equivalent`.
        guards: Refuse answers that could build huge integers; tests turn it off to reach the
            worker's kill at the limit.
    """
    try:
        if not _is_candidate(predicted, reference):
            return False
        assert predicted is not None
        guess_text, gold_text = tidy(predicted), tidy(reference)
        if numeric:  # no variables in the answer: words after a number are its unit
            guess_text = number_before_words(guess_text) or guess_text
        guess_base, gold_base = based_number(guess_text), based_number(gold_text)
        if guess_base and gold_base:
            return same_based_number(guess_base, gold_base)
        # A base on one side only: the digits are graded (43 matches 43_5).
        guess_text = guess_base[0] if guess_base else guess_text
        # Two percents compare as written; a percent and a number in either reading.
        readings = not (has_percent(guess_text) and has_percent(gold_text))
        gold_key = gold_base[0] if gold_base else reference  # untidied: parse_reference tidies
        with time_limit(time_limit_s):
            guess = parse_answer(guess_text, readings)
            if not guess or (guards and integer_bits_bound(guess) > MAX_INTEGER_BITS):
                return False
            gold = list(parse_reference(gold_key, readings))
            gold, guess = align_decimals(gold, guess)
            # allow_set_relation_comp: "x \\ge 3" also matches a reference "[3, \\infty)".
            return bool(gold) and verify(
                gold, guess, allow_set_relation_comp=True, timeout_seconds=None
            )
    except (Exception, GradingTimeout):  # Untrusted text: any failure is a wrong answer.
        return False


def are_equivalent(
    pairs: Sequence[tuple[str | None, str]],
    time_limit_s: float = DEFAULT_TIME_LIMIT,
    numeric: Sequence[bool] | bool = False,
    workers: int | None = None,
) -> list[bool]:
    """:func:`is_equivalent` of each ``(predicted, reference)`` pair, graded in parallel.

    Args:
        pairs: The pairs, as for :func:`is_equivalent`.
        time_limit_s: Budget of each pair, as for :func:`is_equivalent`.
        numeric: As for :func:`is_equivalent`: one for all pairs or one per pair.
        workers: Worker processes grading at once; default: :data:`WORKERS`.
    """
    global _warned_in_process
    flags = [numeric] * len(pairs) if isinstance(numeric, bool) else list(numeric)
    verdicts: list[bool | None] = [False] * len(pairs)
    requests, where = [], []
    for i, ((predicted, reference), flag) in enumerate(zip(pairs, flags, strict=True)):
        if _is_candidate(predicted, reference):
            requests.append(
                {
                    "predicted": predicted,
                    "reference": reference,
                    "time_limit_s": time_limit_s,
                    "numeric": flag,
                }
            )
            where.append(i)
    if requests and time_limit_s > 0:
        graded = grade_batch(math_pool.pool(), requests, time_limit_s, workers or WORKERS)
    else:  # no limit: no worker needed (nor any hard bound)
        graded = [None] * len(requests)
    for i, request, verdict in zip(where, requests, graded, strict=True):
        if verdict is None:
            if time_limit_s > 0 and not _warned_in_process:
                _warned_in_process = True
                _log.warning("no math grading worker starts: grading in process, unbounded")
            verdict = is_equivalent_in_process(**request)
        verdicts[i] = verdict
    return [bool(v) for v in verdicts]


def is_equivalent(
    predicted: str | None,
    reference: str,
    time_limit_s: float = DEFAULT_TIME_LIMIT,
    numeric: bool = False,
) -> bool:
    """Whether a predicted final answer is mathematically equivalent to the reference.

    Never raises, and returns within ``time_limit_s`` plus about half a second, whatever sympy
    does: the grading runs in a worker process, killed (and replaced) at the limit
    (:mod:`math_batch`). A worker's start-up (~0.5 s, before the first grading of a process)
    is not counted. Should no worker start, it runs in this process, bounded by the in-process
    guards only. :func:`are_equivalent` grades many pairs at once.

    Args:
        predicted: The extracted answer (a ``\\boxed{}`` content, a number, ...), LaTeX or
            plain text; ``None`` (no answer) is never equivalent.
        reference: The reference answer, LaTeX or a number (trusted data).
        time_limit_s: Wall-clock budget for parsing and comparing; ``<= 0``: none (and no
            worker).
        numeric: The answer never contains variables (GSM8K): ``18 apples`` is 18.

    Returns:
        True if the two are equal. False otherwise, including when the prediction is longer
        than :data:`MAX_ANSWER_CHARS`, nested deeper than :data:`MAX_NESTING`, could build
        integers over ``MAX_INTEGER_BITS`` bits, or takes too long. A side that sympy cannot
        parse only matches an identical normalized string.
    """
    return are_equivalent([(predicted, reference)], time_limit_s, numeric, workers=1)[0]
