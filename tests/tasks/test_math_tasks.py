"""Tests for the GSM8K and MATH tasks: prompts, targets, row validation, rewards, real data."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.tasks import DatasetFormatError, Example, get_task
from bgpo_lightning.tasks.math_tasks import (
    DEFAULT_INSTRUCTION,
    Gsm8kTask,
    MathTask,
    gsm8k_target,
)

DATA = Path(__file__).parents[2].parent / "shared" / "datasets"
GSM8K_TEST = DATA / "gsm8k" / "test.jsonl"
GSM8K_TRAIN = DATA / "gsm8k" / "train.jsonl"
MATH_TRAIN = DATA / "math" / "train.jsonl"
MATH500 = DATA / "math500" / "test.jsonl"

SOLUTION = (
    "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer's market.\n#### 18"
)


def needs(path: Path):
    return pytest.mark.skipif(not path.is_file(), reason=f"shared dataset missing: {path}")


@pytest.fixture(scope="module")
def gsm8k() -> Gsm8kTask:
    return Gsm8kTask()


@pytest.fixture(scope="module")
def math_task() -> MathTask:
    return MathTask()


def write_rows(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_gsm8k_example(gsm8k: Gsm8kTask) -> None:
    ex = gsm8k.parse_row({"question": "How much?", "answer": SOLUTION})
    assert ex.prompt == DEFAULT_INSTRUCTION.format(question="How much?")
    assert ex.prompt.endswith("How much?") and "\\boxed{}" in ex.prompt
    assert ex.target == (
        "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\n"
        "She makes 9 * 2 = $18 every day at the farmer's market.\n\\boxed{18}"
    )
    assert dict(ex.meta) == {"answer": "18", "numeric": True}
    assert gsm8k.reward(SOLUTION, ex) == gsm8k.reward(ex.target, ex) == 1.0


def test_gsm8k_answer_line_takes_its_first_number(gsm8k: Gsm8kTask) -> None:
    ex = gsm8k.parse_row({"question": "q", "answer": "so\n#### $1,200 dollars"})
    assert dict(ex.meta) == {"answer": "1200", "numeric": True} and ex.target == "so\n\\boxed{1200}"


def test_gsm8k_target_normalizes_the_number() -> None:
    assert gsm8k_target("It costs <<2*500=1000>>1,000.\n#### 1,000", "1000") == (
        "It costs 1,000.\n\\boxed{1000}"
    )
    assert gsm8k_target("#### 5", "5") == "\\boxed{5}"


def test_math_example(math_task: MathTask) -> None:
    ex = math_task.parse_row({"problem": "Find $x$.", "answer": " \\frac{1}{2} "})
    assert ex.prompt.endswith("Find $x$.")
    assert ex.target == "\\boxed{\\frac{1}{2}}"
    assert dict(ex.meta) == {"answer": "\\frac{1}{2}"}


@pytest.mark.parametrize("answer", [None, "", "   "])
def test_math_row_without_reference_loads_and_scores_zero(
    math_task: MathTask, answer: str | None
) -> None:
    ex = math_task.parse_row({"problem": "Which is prime?", "answer": answer})
    assert ex.target == "" and dict(ex.meta) == {"answer": ""}
    assert math_task.reward("\\boxed{}", ex) == 0.0
    assert math_task.reward("", ex) == 0.0


def test_custom_instruction() -> None:
    task = MathTask(instruction="Q: {question}\nA: put the result in \\boxed{{}}")
    ex = task.parse_row({"problem": "1+1?", "answer": "2"})
    assert ex.prompt == "Q: 1+1?\nA: put the result in \\boxed{}"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"instruction": "no placeholder"},
        {"instruction": "{question} {answer}"},  # the answer must not leak into the prompt
        {"instruction": "{question} in \\boxed{}"},  # unescaped braces
        {"instruction": "{question"},
        {"time_limit": 0},
        {"time_limit": -1.0},
    ],
)
@pytest.mark.parametrize("cls", [Gsm8kTask, MathTask])
def test_invalid_constructor_arguments(cls, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [Gsm8kTask, MathTask])
def test_generate_asks_for_data_paths(cls) -> None:
    with pytest.raises(ConfigError, match=r"no example generator.*data\.train_path"):
        cls().generate(4, seed=0)


@pytest.mark.parametrize(
    ("cls", "line", "problem"),
    [
        (Gsm8kTask, '{"answer": "#### 5"}', "missing key 'question'"),
        (Gsm8kTask, '{"question": "q"}', "missing key 'answer'"),
        (Gsm8kTask, '{"question": 3, "answer": "#### 5"}', "key 'question' must be a string"),
        (Gsm8kTask, '{"question": "q", "answer": 5}', "key 'answer' must be a string"),
        (Gsm8kTask, '{"question": " ", "answer": "#### 5"}', "key 'question' is empty"),
        (Gsm8kTask, '{"question": "q", "answer": "it is 5"}', "must end with '#### <number>'"),
        (Gsm8kTask, '{"question": "q", "answer": "#### five"}', "must end with '#### <number>'"),
        (MathTask, '{"answer": "5"}', "missing key 'problem'"),
        (MathTask, '{"problem": "p"}', "missing key 'answer'"),
        (MathTask, '{"problem": "p", "answer": 5}', "key 'answer' must be a string or null"),
        (MathTask, '{"problem": ["p"], "answer": "5"}', "key 'problem' must be a string"),
        (MathTask, '{"problem": "p", "answer": "5"', "invalid JSON"),
        (MathTask, '["p", "5"]', "expected a JSON object"),
    ],
)
def test_malformed_rows_name_file_line_and_key(
    tmp_path: Path, cls, line: str, problem: str
) -> None:
    good = (
        '{"question": "q", "answer": "#### 1"}'
        if cls is Gsm8kTask
        else '{"problem": "p", "answer": "1"}'
    )
    path = write_rows(tmp_path / "rows.jsonl", [good, "", line])
    with pytest.raises(DatasetFormatError) as info:
        cls().load(path)
    message = str(info.value)
    assert str(path) in message and "line 3" in message and problem in message


def test_reward_reads_the_final_answer(math_task: MathTask) -> None:
    ex = math_task.parse_row({"problem": "p", "answer": "\\left( 3, \\frac{\\pi}{2} \\right)"})
    assert math_task.reward("First (3, pi/3)... no: $\\boxed{(3,\\pi/2)}$.", ex) == 1.0
    assert math_task.reward("\\boxed{(3,\\pi/2)} hmm, actually \\boxed{(3,\\pi/3)}", ex) == 0.0
    assert math_task.reward("The answer is (3, pi/2)", ex) == 0.0  # last number: 2
    num = math_task.parse_row({"problem": "p", "answer": "1080"})
    assert math_task.reward("So they need 1,080 bricks.", num) == 1.0  # last number
    assert math_task.reward("#### 1,080", num) == 1.0
    assert math_task.reward("\\boxed{1080", num) == 0.0  # truncated box
    assert math_task.accuracy("\\boxed{1080}", num) == 1.0
    assert math_task.score_batch(["\\boxed{1080}", "1081"], [num, num]) == [
        (1.0, 1.0),
        (0.0, 0.0),
    ]


def test_gsm8k_reads_words_after_the_number_as_units(gsm8k: Gsm8kTask) -> None:
    ex = gsm8k.parse_row({"question": "q", "answer": SOLUTION})
    assert gsm8k.reward("so \\boxed{18 apples}", ex) == 1.0
    assert gsm8k.reward("so \\boxed{17 apples}", ex) == 0.0
    math = MathTask().parse_row({"problem": "p", "answer": "18"})
    assert MathTask().reward("so \\boxed{18 apples}", math) == 0.0  # MATH: apples may be a variable


def test_math_mix_marks_only_gsm8k_rows_numeric() -> None:
    mix = get_task("math_mix")
    gsm = mix.parse_row({"question": "q", "answer": SOLUTION})
    mth = mix.parse_row({"problem": "p", "answer": "18"})
    assert gsm.meta.get("numeric") is True and "numeric" not in mth.meta
    assert mix.score_batch(["\\boxed{18 apples}"] * 2, [gsm, mth]) == [(1.0, 1.0), (0.0, 0.0)]


def test_score_batch_grades_like_reward(gsm8k: Gsm8kTask, math_task: MathTask) -> None:
    gsm = gsm8k.parse_row({"question": "q", "answer": SOLUTION})
    mth = math_task.parse_row({"problem": "p", "answer": "\\frac{\\sqrt{2}}{2}"})
    empty = math_task.parse_row({"problem": "p", "answer": None})
    completions = [
        "\\boxed{\\sqrt{2}/2}",
        "\\boxed{1/\\sqrt{2}}",
        "\\boxed{\\sqrt{3}/2}",
        "\\boxed{9^{9^{9^{9}}}}",
        "no answer",
        "\\boxed{}",
    ]
    examples = [mth] * 5 + [empty]
    expected = [math_task.reward(c, e) for c, e in zip(completions, examples, strict=True)]
    assert expected == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert math_task.score_batch(completions, examples) == [(r, r) for r in expected]
    assert gsm8k.score_batch(["#### 18", "18 eggs", "\\boxed{19}"], [gsm] * 3) == [
        (1.0, 1.0),
        (1.0, 1.0),
        (0.0, 0.0),
    ]
    assert math_task.score_batch([], []) == []


JUNK_COMPLETIONS = [
    "",
    " ",
    "\\boxed{",
    "\\boxed{\\frac{1}{",
    "\\boxed}",
    "}{" * 5000,
    "\\boxed{" + "{" * 5000,
    "\\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}",
    "\\boxed{9^{9^{9^{9}}}}",
    "\\boxed{(10^{9})!}",
    "\\boxed{" + "x" * 10_000 + "}",
    "".join(chr(33 + (i * 7919) % 5000) for i in range(10_000)),
    "9" * 10_000,
    "#### " + "9" * 5000,
    "\x00\udcff\U0001f600",
]


@pytest.mark.parametrize("completion", JUNK_COMPLETIONS, ids=range(len(JUNK_COMPLETIONS)))
def test_junk_completions_score_zero_quickly(completion: str) -> None:
    task = MathTask(time_limit=1.0)
    ex = task.parse_row({"problem": "p", "answer": "\\frac{1}{2}"})
    start = time.perf_counter()
    assert task.reward(completion, ex) == 0.0
    assert task.accuracy(completion, ex) == 0.0
    assert time.perf_counter() - start < 5.0


def test_reward_in_worker_threads(gsm8k: Gsm8kTask, math_task: MathTask) -> None:
    gsm = gsm8k.parse_row({"question": "q", "answer": SOLUTION})
    mth = math_task.parse_row({"problem": "p", "answer": "\\frac{\\sqrt{2}}{2}"})
    jobs = [
        (gsm8k, "so \\boxed{18}", gsm, 1.0),
        (gsm8k, "#### 17", gsm, 0.0),
        (math_task, "\\boxed{\\sqrt{2}/2}", mth, 1.0),
        (math_task, "\\boxed{1/\\sqrt{2}}", mth, 1.0),
        (math_task, "\\boxed{\\sqrt{3}/2}", mth, 0.0),
        (math_task, "\\boxed{9^{9^{9^{9}}}}", mth, 0.0),
    ] * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        rewards = list(pool.map(lambda job: job[0].reward(job[1], job[2]), jobs))
    assert rewards == [job[3] for job in jobs]


def assert_json_plain(examples: list[Example]) -> None:
    for ex in examples:
        meta = dict(ex.meta)
        assert json.loads(json.dumps(meta)) == meta
        assert isinstance(meta["answer"], str)


@needs(GSM8K_TEST)
def test_real_gsm8k_test_solutions_and_targets_score_one(gsm8k: Gsm8kTask) -> None:
    rows = [json.loads(line) for line in GSM8K_TEST.read_text(encoding="utf-8").splitlines()]
    examples = gsm8k.load(GSM8K_TEST)
    assert len(examples) == len(rows) == 1319
    assert_json_plain(examples)
    failures = [
        i
        for i, (row, ex) in enumerate(zip(rows, examples, strict=True))
        if gsm8k.reward(row["answer"], ex) != 1.0 or gsm8k.reward(ex.target, ex) != 1.0
    ]
    assert failures == []
    assert not any("<<" in ex.target or "####" in ex.target for ex in examples)
    assert all(ex.target.endswith(f"\\boxed{{{ex.meta['answer']}}}") for ex in examples)


@needs(MATH500)
def test_real_math500_references_score_one(math_task: MathTask) -> None:
    examples = math_task.load(MATH500)
    assert len(examples) == 500
    assert_json_plain(examples)
    failures = []
    for ex in examples:
        completion = f"Step by step... so the answer is $\\boxed{{{ex.meta['answer']}}}$."
        if math_task.reward(completion, ex) != 1.0 or math_task.reward(ex.target, ex) != 1.0:
            failures.append(ex.meta["answer"])
    assert failures == []


@needs(GSM8K_TRAIN)
def test_real_gsm8k_train_loads(gsm8k: Gsm8kTask) -> None:
    examples = gsm8k.load(GSM8K_TRAIN)
    assert len(examples) == 7473
    assert all(ex.target and ex.meta["answer"] for ex in examples)
    assert_json_plain(examples)


@needs(MATH_TRAIN)
def test_real_math_train_loads_and_references_score_one(math_task: MathTask) -> None:
    examples = math_task.load(MATH_TRAIN)
    assert len(examples) == 7474
    assert_json_plain(examples)
    # Rows 887 and 1010 have a null answer, 5329 and 5331 an empty one (multiple choice).
    missing = [i + 1 for i, ex in enumerate(examples) if not ex.meta["answer"]]
    assert missing == [887, 1010, 5329, 5331]
    # All 7470 references score 1.0 against themselves (checked once: ~90 s on 2 cores); every
    # 10th here keeps the suite fast.
    sample = [ex for ex in examples[::10] if ex.meta["answer"]]
    failures = [ex.meta["answer"] for ex in sample if math_task.reward(ex.target, ex) != 1.0]
    assert failures == []


def test_boxed_only_answer_format_reads_nothing_but_the_box():
    from bgpo_lightning.tasks.math_tasks import Gsm8kTask

    example = Gsm8kTask().make_example("q", "18", "", numeric=True)
    unboxed = ["so the answer is 18", "#### 18"]
    boxed_task = Gsm8kTask(answer_format="boxed")
    assert [Gsm8kTask().reward(c, example) for c in unboxed] == [1.0, 1.0]
    assert [boxed_task.reward(c, example) for c in unboxed] == [0.0, 0.0]
    assert boxed_task.reward("steps \\boxed{18}", example) == 1.0
    assert boxed_task.score_batch(["#### 18", "\\boxed{18}"], [example] * 2) == [
        (0.0, 0.0),
        (1.0, 1.0),
    ]
    with pytest.raises(ValueError, match="answer_format"):
        Gsm8kTask(answer_format="last_number")
