"""One answer's text to math-verify's parses: tidy it, read it each way it can mean, parse each.

``parse`` runs without math-verify's signal-based timeouts; the caller bounds it
(:mod:`math_limits` in process, :mod:`math_pool` around the process).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import sympy
from math_verify import LatexExtractionConfig, LatexNormalizationConfig, parse

from bgpo_lightning.tasks.math_text import percent_readings, says_or, tidy

# math-verify's defaults without its unit stripping: that strips trailing "units" from a list
# holding single letters (c, d, h, m, s, t, ...), so "2c" reads as 2 and "a + b + c" as "a +".
# :func:`tidy` strips units written as \text{...} instead.
_LATEX_ONLY = [
    LatexExtractionConfig(
        normalization_config=LatexNormalizationConfig(
            basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all"
        )
    )
]


class _DropTimeoutDisabledWarning(logging.Filter):
    """math-verify warns once that its timeouts are off; our callers bound the time instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutDisabledWarning())


def conditions_as_set(parsed: Any) -> Any:
    """``{x < -5, x > 7}`` (conditions joined by "or") as the set they describe, else as is.

    Only a list of relations in one common variable, at least one an inequality; equations
    alone (``x=1 or x=2``) stay a list of solutions, which math-verify already compares.
    """
    if not isinstance(parsed, sympy.FiniteSet) or not parsed.args:
        return parsed
    conditions = parsed.args
    if not all(isinstance(c, sympy.core.relational.Relational) for c in conditions):
        return parsed
    if all(isinstance(c, sympy.Eq) for c in conditions):
        return parsed
    variables = set().union(*(c.free_symbols for c in conditions))
    if len(variables) != 1:
        return parsed
    try:
        return sympy.Union(*(c.as_set() for c in conditions))
    except Exception:  # as_set refuses what it cannot solve: keep the list
        return parsed


def _parse_one(text: str) -> list[Any]:
    parsed = parse(
        "\\boxed{" + text + "}",
        extraction_config=_LATEX_ONLY,
        parsing_timeout=None,  # type: ignore[arg-type]  # None: no signal.alarm
    )
    if parsed and says_or(text):
        parsed[0] = conditions_as_set(parsed[0])
    return parsed


def parse_answer(answer: str, readings: bool = True) -> list[Any]:
    """Parses an answer as if it were the content of ``\\boxed{}``, after :func:`tidy`.

    Args:
        answer: The answer text.
        readings: Parse each reading of a percent (``37.5\\%`` as 0.375 and as 37.5), for
            comparison with a number; else only as written.

    Returns:
        math-verify's parses, each ``[sympy_object, normalized_string]`` or only ``[string]``
        when sympy parsing fails, one after the other; ``[]`` if none parses. Never raises,
        except :class:`GradingTimeout` under ``time_limit``.
    """
    text = tidy(answer)
    texts = percent_readings(text) if readings else [text]
    return [item for reading in texts for item in _parse_one(reading)]


@functools.lru_cache(maxsize=16384)
def parse_reference(reference: str, readings: bool = True) -> tuple[Any, ...]:
    """:func:`parse_answer` of a reference, cached: all completions of a prompt share it."""
    return tuple(parse_answer(reference, readings))
