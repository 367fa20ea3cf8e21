"""Tests for the Countdown task: lenient reward, adversarial completions, generation.

d1's exact reward (the default) is tabulated in test_d1_countdown.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bgpo_lightning.tasks import CountdownTask, Example
from bgpo_lightning.tasks.countdown import D1_PROMPT, SHORT_PROMPT, equation_of
from bgpo_lightning.tasks.safe_arith import evaluate

REAL_DIR = Path("/work/shared/datasets/countdown")


LENIENT = dict(prompt_template=SHORT_PROMPT, target_template="{solution}", reward_mode="lenient")


@pytest.fixture(scope="module")
def task() -> CountdownTask:
    return CountdownTask(**LENIENT)


@pytest.fixture(scope="module")
def example(task: CountdownTask) -> Example:
    return task.make_example([3, 5, 2], 16, "(3+5)*2")


def test_example_format(example: Example) -> None:
    assert SHORT_PROMPT == "Countdown {numbers} to {target}:"
    assert example.prompt == "Countdown 3,5,2 to 16:"
    assert example.target == "(3+5)*2"
    assert dict(example.meta) == {"numbers": (3, 5, 2), "target": 16, "solvable": True}


def test_d1_prompt_and_unsolvable_example() -> None:
    task = CountdownTask()
    assert task.prompt_template == D1_PROMPT and task.reward_mode == "d1"
    ex = task.make_example([1, 1, 1], 100, None)
    assert "[1, 1, 1]" in ex.prompt and "exactly 100." in ex.prompt and "<answer>" in ex.prompt
    assert ex.target == "" and ex.meta["solvable"] is False
    ok = task.make_example([3, 5, 2], 16, "(3+5)*2")
    assert ok.target == "<answer>\n(3+5)*2\n</answer>"
    assert task.reward(ok.target, ok) == 1.0


def test_numbers_placeholders() -> None:
    task = CountdownTask(prompt_template="{nums} {numbers} {target}")
    assert task.make_example([3, 5, 2], 16, None).prompt == "[3, 5, 2] 3,5,2 16"
    with pytest.raises(ValueError, match="numbers"):
        CountdownTask(prompt_template="{target}")
    with pytest.raises(ValueError, match="reward_mode"):
        CountdownTask(reward_mode="strict")


def test_modes_differ_where_the_audit_found() -> None:
    d1, lenient = CountdownTask(), CountdownTask(**LENIENT)
    ex = d1.make_example([3, 5, 2], 13, "3+5*2")
    for completion, d1_score, lenient_score in [
        ("3+5*2", 0.0, 1.0),  # untagged
        ("<answer>3+5*2", 0.0, 1.0),  # unclosed
        ("<answer>3+5*2 = 13</answer>", 0.1, 1.0),  # "= target" appended
        ("<answer></answer>", 0.1, 0.0),  # empty tag
        ("<answer>+3+5*2</answer>", 1.0, 0.1),  # unary plus
    ]:
        assert (d1.reward(completion, ex), lenient.reward(completion, ex)) == (
            d1_score,
            lenient_score,
        )


@pytest.mark.parametrize(
    "completion",
    [
        "(3+5)*2",
        "<answer>(3+5)*2</answer>",
        "<answer> 2 * (5 + 3) </answer>",
        "<answer>(3+5)*2 = 16</answer>",  # left of '=' is the equation
        "<reasoning>3+5=8, 8*2=16</reasoning>\n<answer>(5+3)*2</answer>",
        "<answer>1</answer> oops <answer>(3+5)*2</answer>",  # last tag wins
        "<answer>(3+5)*2",  # unclosed tag
        "<answer>\t(3 + 5) * 2\t</answer>",
        "<answer>-(-(3+5))*2</answer>",
        "<answer>(3+5)*2\n</answer>",
    ],
)
def test_correct_answers_score_one(task: CountdownTask, example: Example, completion: str) -> None:
    assert task.reward(completion, example) == 1.0
    assert task.accuracy(completion, example) == 1.0


@pytest.mark.parametrize(
    "completion",
    [
        "3+5+2",  # right numbers, wrong value
        "<answer>3*5+2</answer>",
        "<answer>(3+5)*2+1-1</answer>",  # extra numbers
        "<answer>(3+5)*2*1</answer>",
        "<answer>8*2</answer>",  # numbers missing
        "<answer>(3+5)*2*2</answer>",  # number reused
        "<answer>16</answer>",
        "<answer>(3+5)*2.0</answer>",  # floats add digits: "0" is not a given number
        "<answer>(3+5)**2</answer>",  # exponent parses to Pow: rejected
        "<answer>(3+5)//2</answer>",
        "Answer: (3+5)*2",  # no tags: the whole text, letters included, is the equation
        "The answer is 16.",
        "<answer>(3+5)x2</answer>",  # character outside the whitelist
        "<answer>abs(3+5)*2</answer>",
        "<answer>(3+5)*2)</answer>",  # syntax error
        "<answer>((3+5)*2</answer>",
        "<answer>(3+5) 2</answer>",
        "<answer>(3+5)*2 / (3-3)</answer>",
        "<answer>05*3+2</answer>",  # leading zero: not valid syntax
        "<answer>(3+5)*２</answer>",  # fullwidth digit: 2 is missing
    ],
)
def test_wrong_but_formed_answers_score_format_reward(
    task: CountdownTask, example: Example, completion: str
) -> None:
    assert task.reward(completion, example) == 0.1
    assert task.accuracy(completion, example) == 0.0


@pytest.mark.parametrize(
    "completion",
    [
        "",
        "   ",
        "<answer></answer>",
        "<answer>",
        "no equation here",
        "<answer>+-*/()</answer>",
        "٣+٥",
        "= 16",
        "<answer>=(3+5)*2</answer>",
    ],
    ids=[
        "empty",
        "spaces",
        "empty-tags",
        "open-tag",
        "words",
        "ops-only",
        "arabic-digits",
        "rhs-only",
        "leading-equals",
    ],
)
def test_no_equation_scores_zero(task: CountdownTask, example: Example, completion: str) -> None:
    assert task.reward(completion, example) == 0.0


@pytest.mark.parametrize(
    ("completion", "numbers", "target", "expected"),
    [
        ("9" * 5000, [1, 2], 3, 0.1),
        ("<answer>" + "9" * 5000 + "+1</answer>", [1, 9], 10, 0.1),
        ("1/0", [1, 0], 0, 0.1),  # meta need not come from a validated file here
        ("2**99999", [2, 99999], 1, 0.1),
        ("__import__('os').system('x')", [1], 1, 0.0),
        ("__import__('os').system('x') 1 2", [1, 2], 1, 0.1),
        ("(" * 10000 + "1+2" + ")" * 10000, [1, 2], 3, 0.1),
        ("-" * 150 + "1+2", [1, 2], 3, 0.1),
        ("1" + "+1" * 99, [1] * 100, 100, 0.1),  # too long to evaluate, within numbers
        ("3-5", [3, 5], -2, 1.0),  # negative targets are fine
        ("-3+5", [3, 5], 2, 1.0),  # unary minus allowed, as in d1
        ("7/2", [7, 2], 3, 0.1),  # 3.5 is not 3
        ("1/3+1/3+1/3", [1, 3, 1, 3, 1, 3], 1, 1.0),  # exact arithmetic
        ("<answer>1e5</answer>", [1, 5], 100000, 0.1),
        ("\x00 1+2", [1, 2], 3, 0.1),
    ],
)
def test_adversarial_completions_never_raise(
    task: CountdownTask, completion: str, numbers: list[int], target: int, expected: float
) -> None:
    ex = Example(prompt="", target="", meta={"numbers": tuple(numbers), "target": target})
    assert task.reward(completion, ex) == expected


def test_equation_of_takes_left_of_equals() -> None:
    assert equation_of("<answer> 1+2 = 3 = 3 </answer>") == "1+2"
    assert equation_of("x <answer>4*4") == "4*4"


def test_generate_is_deterministic_distinct_and_solved() -> None:
    task = CountdownTask(num_numbers=(3, 4), max_number=50, max_target=100, **LENIENT)
    a = task.generate(200, seed=3)
    assert a == task.generate(200, seed=3)
    assert [e.prompt for e in a] != [e.prompt for e in task.generate(200, seed=4)]
    assert len({e.prompt for e in a}) == 200
    sizes = set()
    for ex in a:
        numbers, target = ex.meta["numbers"], ex.meta["target"]
        sizes.add(len(numbers))
        assert all(1 <= x <= 50 for x in numbers) and 1 <= target <= 100
        assert ex.meta["solvable"] and ex.target
        assert evaluate(ex.target) == target
        assert sorted(map(int, re.findall(r"[0-9]+", ex.target))) == sorted(numbers)
        assert task.reward(ex.target, ex) == 1.0
        assert task.reward(f"<answer>{ex.target}</answer>", ex) == 1.0
    assert sizes == {3, 4}


def test_generate_exclude_makes_splits_disjoint(task: CountdownTask) -> None:
    train = task.generate(300, seed=0)
    val = task.generate(300, seed=1, exclude={e.prompt for e in train})
    assert not {e.prompt for e in train} & {e.prompt for e in val}


def test_generate_fails_cleanly_when_space_is_tiny() -> None:
    # Numbers in [1, 1]: 1,1 reaches only 1 and 2 as positive integers.
    with pytest.raises(ValueError, match="could only generate 2 of 3"):
        CountdownTask(num_numbers=(2,), max_number=1, **LENIENT).generate(3, seed=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_numbers": (1,)},
        {"num_numbers": ()},
        {"num_numbers": (6,)},
        {"max_number": 0},
        {"min_target": 5, "max_target": 4},
    ],
)
def test_invalid_constructor_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        CountdownTask(**kwargs)


@pytest.mark.skipif(not (REAL_DIR / "test.jsonl").is_file(), reason="shared d1 data missing")
def test_real_test_split_is_solved(task: CountdownTask) -> None:
    examples = task.load(REAL_DIR / "test.jsonl")
    assert len(examples) == 256
    solvable = [ex for ex in examples if ex.meta["solvable"]]
    assert len(solvable) == 256  # every d1 test row has a solution
    for ex in solvable:
        assert task.reward(ex.target, ex) == 1.0
        assert task.reward(f"<answer>{ex.target}</answer>", ex) == 1.0
    d1 = CountdownTask()
    for ex in d1.load(REAL_DIR / "test.jsonl"):
        assert d1.reward(ex.target, ex) == 1.0  # "<answer>\n...\n</answer>"


@pytest.mark.skipif(not (REAL_DIR / "train.jsonl").is_file(), reason="shared d1 data missing")
def test_real_train_rows_with_four_numbers_are_solved(task: CountdownTask) -> None:
    examples = task.load(REAL_DIR / "train.jsonl", limit=300)
    assert {len(ex.meta["numbers"]) for ex in examples} == {3, 4}
    for ex in examples:
        assert ex.meta["solvable"] and task.reward(ex.target, ex) == 1.0
