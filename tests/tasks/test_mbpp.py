"""Tests for the MBPP task: the 3-shot prompt, data loading, rewards from the real sandbox."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.tasks.base import DatasetFormatError, Example
from bgpo_lightning.tasks.mbpp import DEFAULT_PROMPT, MbppTask, setup_definitions

DATA = Path("/work/shared/datasets/mbpp")
needs_data = pytest.mark.skipif(
    not (DATA / "test.jsonl").is_file(), reason="shared MBPP data not available"
)

# Limits generous enough for every reference program on a slow core: which programs pass must
# not depend on how fast this machine is.
GENEROUS = {"cpu_seconds": 120, "wall_seconds": 300}
# amicable_numbers_sum(9999) sums divisors by trial division: seconds of CPU (about 7 s on this
# project's machines, over the 5 s default); it checks the CPU limit against a real program.
SLOW_TASK = 123

# Reference programs of MBPP (all 974 rows) that fail on their own, and why.
EXPECTED_FAILURES = {
    # asserts sys.getsizeof(...) == 104 for a 6-tuple: true of an older 32-bit CPython only.
    596: "failed",
    # returns a set of tuples built from sets: the expected value assumes an iteration order
    # that CPython does not produce.
    642: "failed",
}

ROW = {
    "task_id": 7,
    "text": "Write a function to add two numbers.",
    "code": "def add(a, b):\r\n  return a + b",
    "test_list": ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"],
    "test_setup_code": "",
    "challenge_test_list": [],
}


def break_one_assert(tests: list[str]) -> list[str]:
    """The asserts with the first one negated: the reference must then fail."""
    tree = ast.parse(tests[0])
    tree.body[0].test = ast.UnaryOp(op=ast.Not(), operand=tree.body[0].test)
    return [ast.unparse(tree), *tests[1:]]


@pytest.fixture(scope="module")
def task() -> MbppTask:
    return MbppTask(workers=4, limits=GENEROUS)


@pytest.fixture(scope="module")
def test_split(task: MbppTask) -> list[Example]:
    if not (DATA / "test.jsonl").is_file():
        pytest.skip("shared MBPP data not available")
    return task.load(DATA / "test.jsonl")


@pytest.fixture(scope="module")
def all_rows(task: MbppTask) -> list[Example]:
    if not (DATA / "mbpp.jsonl").is_file():
        pytest.skip("shared MBPP data not available")
    return task.load(DATA / "mbpp.jsonl")


@needs_data
def test_three_shot_prompt_and_target(test_split: list[Example]) -> None:
    assert len(test_split) == 500
    ex = test_split[0]
    assert ex.meta["task_id"] == 11
    problem = ex.prompt
    shots = problem.rsplit("[DONE]", 1)[0]
    assert problem.count("[BEGIN]\n") == 4 and problem.count("[DONE]") == 3
    assert problem.startswith("You are an expert Python programmer, and here is your task: ")
    assert "similar_elements" in shots and "is_not_prime" in shots and "heap_queue_largest" in shots
    assert problem.endswith("[BEGIN]\n") and "assert remove_Occ(" in problem.rsplit("[DONE]", 1)[1]
    assert ex.target.endswith("\n[DONE]") and "\r" not in ex.target
    assert ex.meta["entry_point"] == "remove_Occ"
    for e in test_split:
        assert json.loads(json.dumps(dict(e.meta))) == dict(e.meta)


@needs_data
def test_reference_programs_pass_and_broken_asserts_fail(
    task: MbppTask, all_rows: list[Example]
) -> None:
    assert len(all_rows) == 974
    broken = [
        Example(e.prompt, e.target, {**e.meta, "tests": break_one_assert(e.meta["tests"])})
        for e in all_rows[::5]
    ]
    results = task.run([e.target for e in all_rows + broken], all_rows + broken)
    outcome = dict(zip((e.meta["task_id"] for e in all_rows), results, strict=False))
    failures = {tid: r.status.value for tid, r in outcome.items() if not r.passed}
    assert failures == EXPECTED_FAILURES, {t: outcome[t].detail for t in failures}
    still_passing = [
        e.meta["task_id"] for e, r in zip(broken, results[len(all_rows) :], strict=True) if r.passed
    ]
    assert still_passing == []


@needs_data
def test_cpu_limit_below_a_programs_need_times_out(all_rows: list[Example]) -> None:
    ex = next(e for e in all_rows if e.meta["task_id"] == SLOW_TASK)
    (enough,) = MbppTask(workers=1, limits=GENEROUS).run([ex.target], [ex])
    assert enough.passed, enough.detail
    if enough.duration_s < 2.0:
        pytest.skip(f"task {SLOW_TASK} needs under 2 s here: 1 s (the least) is not below it")
    (starved,) = MbppTask(workers=1, limits={**GENEROUS, "cpu_seconds": 1}).run([ex.target], [ex])
    assert starved.status.value == "timeout", (starved.status, starved.detail)
    assert "CPU limit" in starved.detail


@needs_data
def test_builtin_named_function_is_tested(test_split: list[Example], task: MbppTask) -> None:
    ex = next(e for e in test_split if e.meta["task_id"] == 126)  # def sum(a, b)
    assert ex.meta["expose"] == ["sum"]
    assert task.score_batch([ex.target, "def sum(a, b):\n    return 0\n[DONE]"], [ex, ex]) == [
        (1.0, 1.0),
        (0.0, 0.0),
    ]


@needs_data
def test_setup_code_runs_in_the_harness(task: MbppTask, all_rows: list[Example]) -> None:
    ex = next(e for e in all_rows if e.meta["task_id"] == 927)  # trees built by test_setup_code
    setup = ex.meta["setup"]  # the reference's Node class, then the trees
    assert setup.startswith("class Node:") and "root = Node(1)" in setup
    assert "max_height" not in setup and ex.meta["program_setup"] == ""
    job = task.job(ex.target, ex)
    assert job.setup == setup and "root = Node(1)" not in job.program
    assert task.score_batch([ex.target, "def max_height(node):\n    return 3\n"], [ex, ex]) == [
        (1.0, 1.0),
        (0.0, 0.0),
    ]


def test_setup_without_reference_definitions_runs_with_the_program() -> None:
    row = {
        **ROW,
        "code": "def add(a, b):\n  return a + b",
        "test_list": ["assert add(X, 1) == 3"],
        "test_setup_code": "X = Two()",
    }
    ex = MbppTask(num_shots=0).parse_row(row)
    assert ex.meta["setup"] == "" and ex.meta["program_setup"] == "X = Two()"
    program = "class Two(int):\n  def __new__(cls):\n    return int.__new__(cls, 2)\n"
    task = MbppTask(num_shots=0, workers=1, limits={"wall_seconds": 5})
    assert task.job(program + ex.target, ex).program.rstrip().endswith("X = Two()")
    assert task.reward(program + ex.target, ex) == 1.0


def test_setup_definitions_follow_what_the_setup_uses() -> None:
    code = (
        "import math\nSIZE = 2\n\n@dataclass_like\nclass Node:\n  def __init__(self, v):\n"
        "    self.v = v * SIZE\n\ndef unrelated():\n  pass\n\ndef solve(n):\n  return n.v\n"
    )
    assert setup_definitions("root = Node(1)", code, ["solve"]) == (
        "SIZE = 2\n@dataclass_like\nclass Node:\n  def __init__(self, v):\n    self.v = v * SIZE\n"
    )
    assert setup_definitions("x = 1\ny = [x]", code, ["solve"]) == ""
    assert setup_definitions("r = Missing(1)", code, ["solve"]) is None
    assert setup_definitions("r = solve(1)", code, ["solve"]) is None


def test_zero_shot_row_and_completion_forms(tmp_path: Path) -> None:
    task = MbppTask(num_shots=0, workers=2, limits={"wall_seconds": 5})
    ex = task.parse_row(ROW)
    assert ex.prompt == DEFAULT_PROMPT.format(text=ROW["text"], tests="\n".join(ROW["test_list"]))
    assert ex.target == "def add(a, b):\n  return a + b\n[DONE]"
    completions = [
        ex.target,
        "```python\ndef add(a, b):\n    return b + a\n```\n[DONE]",
        "def add(a, b):\n  return a - b\n[DONE]",
        "print('passed')\n[DONE]",
    ]
    assert [r for r, _ in task.score_batch(completions, [ex] * 4)] == [1.0, 1.0, 0.0, 0.0]


def test_shots_come_from_beside_the_data_file(tmp_path: Path) -> None:
    shots = [
        {**ROW, "task_id": i, "text": f"Shot {i}.", "code": f"def s{i}():\n  return {i}"}
        for i in (2, 3, 4)
    ]
    (tmp_path / "prompt.jsonl").write_text("\n".join(json.dumps(r) for r in shots))
    (tmp_path / "test.jsonl").write_text(json.dumps(ROW) + "\n")
    ex = MbppTask(num_shots=2).load(tmp_path / "test.jsonl")[0]
    assert ex.prompt.index("Shot 2.") < ex.prompt.index("Shot 3.") < ex.prompt.index(ROW["text"])
    assert "Shot 4." not in ex.prompt and "def s2():\n  return 2\n[DONE]\n\n" in ex.prompt
    explicit = MbppTask(num_shots=1, shots_path=str(tmp_path / "prompt.jsonl"))
    assert "Shot 2." in explicit.parse_row(ROW).prompt
    with pytest.raises(ConfigError, match="shots_path"):
        MbppTask(num_shots=1).parse_row(ROW)
    with pytest.raises(ConfigError, match="not found"):
        MbppTask(num_shots=1).load(tmp_path / "elsewhere" / "test.jsonl")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({k: v for k, v in ROW.items() if k != "code"}, "missing key 'code'"),
        ({**ROW, "task_id": "7"}, "task_id"),
        ({**ROW, "test_list": []}, "test_list"),
        ({**ROW, "test_list": [1]}, "test_list"),
        ({**ROW, "test_setup_code": None}, "test_setup_code"),
    ],
)
def test_bad_rows(tmp_path: Path, row: dict, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DatasetFormatError, match=f"line 2: .*{message}"):
        MbppTask(num_shots=0).load(path)


def test_constructor_validation_and_generate() -> None:
    with pytest.raises(ValueError, match="num_shots"):
        MbppTask(num_shots=4)
    with pytest.raises(ValueError, match="placeholder"):
        MbppTask(prompt_template="{tests} only")
    with pytest.raises(ValueError, match="placeholder"):
        MbppTask(target_template="{solution}")
    with pytest.raises(ConfigError, match="data path"):
        MbppTask(num_shots=0).generate(2, seed=0)
