"""Source rows -> the JSON-lines schemas our task loaders read.

One converter per source format. Each takes a row as the ``datasets`` library yields it and
returns the output row, keys in the order of the files in ``../shared/datasets`` (so the two
can be compared with ``diff``), or raises :class:`RowProblem` naming the offending key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

Row = Mapping[str, Any]
Converter = Callable[[Row], dict[str, Any]]

_NUMBER_LIST = re.compile(r"\d+(?:,\d+)*", re.ASCII)
_INTEGER = re.compile(r"-?\d+", re.ASCII)
_PUZZLE = re.compile(r"[0-4]{16}")
_SOLUTION = re.compile(r"[1-4]{16}")


class RowProblem(ValueError):
    """One key of one row does not fit the schema (the caller adds where the row is)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"key {key!r} {problem}")


class MalformedRow(ValueError):
    """A source row that does not fit (the message names dataset, split, row index and key),
    or a source without rows."""


def convert_rows(
    rows: Iterable[Row], convert: Converter, label: str, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """Converts the first ``limit`` rows (all for ``None``) in order.

    Raises:
        MalformedRow: ``"<label> row <0-based index>: key '<key>' ..."`` for the first bad row,
            or when there is no row at all (an empty file would pass for a complete one).
    """
    count = 0
    for index, row in enumerate(islice(rows, limit)):
        try:
            yield convert(row)
        except RowProblem as err:
            raise MalformedRow(f"{label} row {index}: {err}") from None
        count += 1
    if not count:
        raise MalformedRow(f"{label}: the source has no rows")


def _get(row: Row, key: str) -> Any:
    if key not in row:
        raise RowProblem(key, "is missing")
    return row[key]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _string(row: Row, key: str, *, empty_ok: bool = False) -> str:
    value = _get(row, key)
    if not isinstance(value, str) or not (empty_ok or value.strip()):
        raise RowProblem(key, f"must be a non-empty string, got {_short(value)}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(row: Row, key: str) -> int:
    value = _get(row, key)
    if not _is_int(value):
        raise RowProblem(key, f"must be an integer, got {_short(value)}")
    return value


def _strings(row: Row, key: str, *, empty_ok: bool = False) -> list[str]:
    value = _get(row, key)
    if (
        not isinstance(value, list | tuple)
        or not (empty_ok or value)
        or not all(isinstance(v, str) for v in value)
    ):
        raise RowProblem(key, f"must be a list of strings, got {_short(value)}")
    return list(value)


def _matching(row: Row, key: str, pattern: re.Pattern[str], what: str) -> str:
    value = _get(row, key)
    # A number here means the CSV reader parsed the digits and lost leading zeros.
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise RowProblem(key, f"must be {what} as text, got {_short(value)}")
    return value


def gsm8k(row: Row) -> dict[str, Any]:
    """openai/gsm8k: ``question`` and ``answer`` (worked solution ending in ``#### n``) as is."""
    question = _string(row, "question")
    answer = _string(row, "answer")
    if "####" not in answer:
        raise RowProblem("answer", f"must end with '#### <number>', got {_short(answer[-40:])}")
    return {"question": question, "answer": answer}


def math_solution(row: Row) -> dict[str, Any]:
    """MATH with worked solutions: the answer is the solution's last ``\\boxed{}``.

    A solution without a box gives ``null`` (the math task keeps such a row, unscored).
    """
    # Imported here: bgpo_lightning.tasks pulls in torch and Lightning (seconds), and only
    # this converter needs the parser.
    from bgpo_lightning.tasks.math_answer import last_boxed

    problem = _string(row, "problem")
    return {"problem": problem, "answer": last_boxed(_string(row, "solution"))}


def math_answer(row: Row) -> dict[str, Any]:
    """MATH-500: ``problem`` and its final ``answer`` as is."""
    return {"problem": _string(row, "problem"), "answer": _string(row, "answer")}


def countdown_hub(row: Row) -> dict[str, Any]:
    """Jiayi-Pan/Countdown-Tasks-3to4: ``nums`` (list of int) and ``target`` (int)."""
    nums = _get(row, "nums")
    if not isinstance(nums, list | tuple) or not nums or not all(_is_int(n) for n in nums):
        raise RowProblem("nums", f"must be a list of integers, got {_short(nums)}")
    return {"numbers": list(nums), "target": _integer(row, "target")}


def countdown_d1(row: Row) -> dict[str, Any]:
    """d1's countdown test file: ``input`` ``"30,100,93"`` and ``output`` ``"23"``, as text."""
    numbers = _matching(row, "input", _NUMBER_LIST, "comma-separated numbers")
    target = _matching(row, "output", _INTEGER, "an integer")
    return {"numbers": [int(n) for n in numbers.split(",")], "target": int(target)}


def sudoku_d1(row: Row) -> dict[str, Any]:
    """d1's 4x4 sudoku CSVs: ``Puzzle`` (16 digits 0-4, 0 empty) and ``Solution`` (1-4)."""
    return {
        "puzzle": _matching(row, "Puzzle", _PUZZLE, "16 digits 0-4"),
        "solution": _matching(row, "Solution", _SOLUTION, "16 digits 1-4"),
    }


def mbpp(row: Row) -> dict[str, Any]:
    """google-research-datasets/mbpp (config ``full``): every column, checked and copied."""
    return {
        "text": _string(row, "text"),
        "code": _string(row, "code"),
        "task_id": _integer(row, "task_id"),
        "test_setup_code": _string(row, "test_setup_code", empty_ok=True),
        "test_list": _strings(row, "test_list"),
        "challenge_test_list": _strings(row, "challenge_test_list", empty_ok=True),
    }
