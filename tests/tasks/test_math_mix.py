"""math_mix: MATH and GSM8K rows in one split, each read by its own schema."""

from __future__ import annotations

import json

import pytest

from bgpo_lightning.tasks import DatasetFormatError, get_task
from bgpo_lightning.tasks.math_tasks import Gsm8kTask, MathTask

GSM8K_ROW = {"question": "What is 2+3?", "answer": "2+3=<<2+3=5>>5\n#### 5"}
MATH_ROW = {"problem": "Simplify $\\frac{2}{4}$.", "answer": "\\frac{1}{2}"}


def test_rows_of_both_schemas_match_their_own_tasks(tmp_path):
    path = tmp_path / "mix.jsonl"
    path.write_text(json.dumps(GSM8K_ROW) + "\n" + json.dumps(MATH_ROW) + "\n")
    mixed = get_task("math_mix").load(path)
    assert mixed[0] == Gsm8kTask().parse_row(GSM8K_ROW)
    assert mixed[1] == MathTask().parse_row(MATH_ROW)
    task = get_task("math_mix")
    assert task.reward("so \\boxed{5}", mixed[0]) == 1.0
    assert task.reward("so \\boxed{0.5}", mixed[1]) == 1.0
    assert task.reward("so \\boxed{0.25}", mixed[1]) == 0.0


def test_a_row_of_neither_schema_names_the_missing_key(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(MATH_ROW) + "\n" + json.dumps({"text": "hi"}) + "\n")
    with pytest.raises(DatasetFormatError, match=r"bad\.jsonl line 2: missing key 'problem'"):
        get_task("math_mix").load(path)
