"""Tests for the shared task layer: answer extraction, templates, registry, file loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bgpo_lightning.tasks import (
    CountdownTask,
    DatasetFormatError,
    Example,
    SudokuTask,
    extract_answer,
    get_task,
)
from bgpo_lightning.tasks.base import check_template, collect_distinct


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  42 ", "42"),
        ("<answer>7</answer>", "7"),
        ("think... <answer> 1+2 </answer> done", "1+2"),
        ("<answer>1</answer> then <answer>2</answer>", "2"),  # last span wins
        ("<answer>1</answer> then <answer>2", "2"),  # unclosed last tag
        ("reasoning <answer>3*4", "3*4"),
        ("<answer></answer>", ""),
        ("<answer>", ""),
        ("</answer>", "</answer>"),
        ("", ""),
        ("<answer>a\nb</answer>", "a\nb"),
    ],
)
def test_extract_answer(text: str, expected: str) -> None:
    assert extract_answer(text) == expected


def test_check_template_rejects_unknown_missing_and_malformed() -> None:
    assert check_template("x {a}", kind="t", allowed=["a"], required=["a"]) == "x {a}"
    with pytest.raises(ValueError, match="unknown placeholder"):
        check_template("{b}", kind="t", allowed=["a"])
    with pytest.raises(ValueError, match="must contain"):
        check_template("no fields", kind="t", allowed=["a"], required=["a"])
    with pytest.raises(ValueError, match="not a valid format string"):
        check_template("{a", kind="t", allowed=["a"])
    with pytest.raises(ValueError, match="unknown placeholder"):
        check_template("{0}", kind="t", allowed=["a"])


def test_task_constructors_validate_templates() -> None:
    with pytest.raises(ValueError, match="puzzle"):
        SudokuTask(prompt_template="Sudoku:")
    with pytest.raises(ValueError, match="unknown placeholder"):
        CountdownTask(prompt_template="{numbers} {target} {oops}")


def test_get_task_builds_by_name_with_kwargs() -> None:
    task = get_task("sudoku", max_empty=7)
    assert isinstance(task, SudokuTask) and task.max_empty == 7
    assert isinstance(get_task("countdown"), CountdownTask)


def test_get_task_unknown_name_lists_choices() -> None:
    with pytest.raises(ValueError) as info:
        get_task("foo")
    known = "countdown, gsm8k, humaneval, math, math_mix, mbpp, sudoku"
    assert str(info.value) == f"unknown task 'foo'; choose one of: {known}"


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD_SUDOKU = json.dumps({"puzzle": "3102200002100320", "solution": "3142243142131324"})


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ('{"puzzle": "31022000', "invalid JSON"),
        ('["not", "an", "object"]', "expected a JSON object"),
        ('{"puzzle": "3102200002100320"}', "missing key 'solution'"),
        ('{"puzzle": "310220000210032", "solution": "3142243142131324"}', "'puzzle'"),
        ('{"puzzle": 3102200002100320, "solution": "3142243142131324"}', "must be a string"),
        ('{"puzzle": "3102200002100320", "solution": "3142243142131342"}', "not a valid"),
        ('{"puzzle": "4102200002100320", "solution": "3142243142131324"}', "disagrees"),
        ('{"puzzle": "3142243142131324", "solution": "3142243142131324"}', "no empty cell"),
    ],
)
def test_sudoku_load_reports_file_line_and_problem(
    tmp_path: Path, bad_line: str, problem: str
) -> None:
    path = _write(tmp_path / "sudoku_rows.jsonl", [GOOD_SUDOKU, GOOD_SUDOKU, bad_line, GOOD_SUDOKU])
    with pytest.raises(DatasetFormatError) as info:
        SudokuTask().load(path)
    message = str(info.value)
    assert message.startswith(f"sudoku: {path} line 3: ")
    assert problem in message


@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ('{"numbers": [1, 2, 3]}', "missing key 'target'"),
        ('{"target": 6}', "missing key 'numbers'"),
        ('{"numbers": [1, 2, "3"], "target": 6}', "list of integers"),
        ('{"numbers": [1, true, 3], "target": 6}', "list of integers"),
        ('{"numbers": 7, "target": 6}', "list of integers"),
        ('{"numbers": [1], "target": 6}', "2 to 5"),
        ('{"numbers": [1, 0, 3], "target": 6}', "must be in"),
        ('{"numbers": [1, 2, 3], "target": 6.5}', "'target' must be an integer"),
        ('{"numbers": [1, 2, 3], "target": 10000000000000}', "'target' must be in"),
    ],
)
def test_countdown_load_reports_file_line_and_problem(
    tmp_path: Path, bad_line: str, problem: str
) -> None:
    good = '{"numbers": [3, 5, 2], "target": 16}'
    path = _write(tmp_path / "cd.jsonl", [good, "", bad_line])  # blank lines still count
    with pytest.raises(DatasetFormatError) as info:
        CountdownTask().load(path)
    assert f"countdown: {path} line 3: " in str(info.value)
    assert problem in str(info.value)


def test_load_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "test.jsonl"
    with pytest.raises(FileNotFoundError, match=str(path)):
        CountdownTask().load(path)


def test_load_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="no rows"):
        SudokuTask().load(_write(tmp_path / "empty.jsonl", [""]))


def test_load_limit_stops_before_later_bad_rows(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.jsonl", [GOOD_SUDOKU, GOOD_SUDOKU, "not json"])
    assert len(SudokuTask().load(path, limit=2)) == 2
    with pytest.raises(DatasetFormatError, match="line 3"):
        SudokuTask().load(path)


def test_collect_distinct_dedupes_and_fails_when_exhausted() -> None:
    values = iter(["a", "b", "a", "c", "d"])

    def sample() -> Example:
        return Example(prompt=next(values), target="", meta={})

    got = collect_distinct(2, sample, exclude={"b"})
    assert [e.prompt for e in got] == ["a", "c"]
    with pytest.raises(ValueError, match="could only generate 1 of 2"):
        collect_distinct(2, lambda: Example("same", "", {}))
    with pytest.raises(ValueError, match="n must be"):
        collect_distinct(-1, lambda: None)
