"""Math word problems from files: GSM8K and MATH (train and MATH500), graded by equivalence."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.tasks.base import Example, RowError, Task, check_template, require_key
from bgpo_lightning.tasks.math_answer import extract_final_answer, hashes_answer, numbers_in
from bgpo_lightning.tasks.math_grader import DEFAULT_TIME_LIMIT, are_equivalent, is_equivalent

# A d1/BGPO-style instruction: reason step by step, final answer in \boxed{} (braces doubled
# for str.format).
DEFAULT_INSTRUCTION = (
    "Solve the following math problem. Think step by step, then write only the final answer "
    "inside \\boxed{{}}.\n\n{question}"
)

_FIELDS = ("question",)
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations, e.g. <<9*2=18>>


ANSWER_FORMATS = ("any", "boxed")


def gsm8k_target(solution: str, answer: str) -> str:
    """A GSM8K worked solution as an SFT response ending in ``\\boxed{answer}``.

    Args:
        solution: The dataset's ``answer`` field: steps with ``<<...>>`` calculator
            annotations, then ``#### <number>``.
        answer: The normalized final number.

    Returns:
        The steps without annotations and without the ``####`` line, then ``\\boxed{answer}``.
    """
    steps = _CALCULATOR.sub("", solution.rsplit("####", 1)[0]).strip()
    boxed = f"\\boxed{{{answer}}}"
    return f"{steps}\n{boxed}" if steps else boxed


def _require_text(row: Mapping[str, Any], key: str) -> str:
    value = require_key(row, key)
    if not isinstance(value, str):
        raise RowError(f"key {key!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RowError(f"key {key!r} is empty")
    return value


class MathAnswerTask(Task):
    """Shared part of the math tasks: prompt, reward by final-answer equivalence, no generator.

    Args:
        instruction: Prompt template with placeholder ``{question}``; literal braces are
            doubled, as in the default's ``\\boxed{{}}``.
        time_limit: Seconds allowed to grade one completion (> 0); see
            :func:`~bgpo_lightning.tasks.math_grader.is_equivalent`.
        answer_format: ``"any"`` (default: the last ``\\boxed{}``, else a ``####`` line,
            else the last number, because an answer a reader would accept should score
            whatever its layout) or ``"boxed"`` (only ``\\boxed{}`` counts, as BGPO's code
            scores; use it for paper comparisons).
    """

    def __init__(
        self,
        instruction: str = DEFAULT_INSTRUCTION,
        time_limit: float = DEFAULT_TIME_LIMIT,
        answer_format: str = "any",
    ) -> None:
        if not time_limit > 0:
            raise ValueError(f"time_limit must be > 0 seconds, got {time_limit}")
        if answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}: {answer_format!r}")
        self.boxed_only = answer_format == "boxed"
        self.instruction = check_template(
            instruction, kind="instruction", allowed=_FIELDS, required=_FIELDS
        )
        self.time_limit = time_limit

    def make_example(
        self, question: str, answer: str, target: str, numeric: bool = False
    ) -> Example:
        """Builds an example; ``answer`` is the reference, ``""`` if there is none.

        ``numeric`` (GSM8K): answers never contain variables, so meta ``"numeric": True`` lets
        the reward read ``18 apples`` as 18.
        """
        meta: dict[str, Any] = {"answer": answer}
        if numeric:
            meta["numeric"] = True
        return Example(prompt=self.instruction.format(question=question), target=target, meta=meta)

    def reward(self, completion: str, example: Example) -> float:
        """1.0 if the final answer is equivalent to the reference, else 0.0.

        The final answer is the last ``\\boxed{}`` or, without one, the ``####`` line or the
        last number (see :func:`~bgpo_lightning.tasks.math_answer.extract_final_answer`);
        equivalence is math-verify's, within ``time_limit``. An example without reference
        always scores 0.0.
        """
        reference = example.meta["answer"]
        if not reference:
            return 0.0
        predicted = extract_final_answer(completion, self.boxed_only)
        numeric = bool(example.meta.get("numeric", False))
        return 1.0 if is_equivalent(predicted, reference, self.time_limit, numeric) else 0.0

    def accuracy(self, completion: str, example: Example) -> float:
        """Whether the final answer is correct: the reward itself."""
        return self.reward(completion, example)

    def score_batch(
        self, completions: Sequence[str], examples: Sequence[Example]
    ) -> list[tuple[float, float]]:
        """Reward and accuracy (the same score) of each completion, graded once, in parallel.

        As :meth:`reward`, with the batch spread over the grading workers
        (:func:`~bgpo_lightning.tasks.math_grader.are_equivalent`).
        """
        pairs = [
            (extract_final_answer(c, self.boxed_only), e.meta["answer"])
            for c, e in zip(completions, examples, strict=True)
        ]
        numeric = [bool(e.meta.get("numeric", False)) for e in examples]
        verdicts = are_equivalent(pairs, self.time_limit, numeric)
        return [(1.0, 1.0) if ok else (0.0, 0.0) for ok in verdicts]

    def generate(self, n: int, seed: int, exclude: Collection[str] = frozenset()) -> list[Example]:
        """Math problems are not generated: always raises.

        Raises:
            ConfigError: Naming the data paths to set.
        """
        raise ConfigError(
            f"task {self.name!r} has no example generator: its data must come from JSON-lines "
            "files; set data.train_path, data.val_path and data.test_path (each split used)"
        )


class Gsm8kTask(MathAnswerTask):
    """GSM8K: grade-school word problems with integer answers.

    Rows are ``{"question": str, "answer": str}``, the answer a worked solution ending in
    ``#### <number>``. The SFT target is that solution ending in ``\\boxed{<number>}``. The
    meta marks the answer numeric: a prediction ``18 apples`` scores as 18.
    """

    name = "gsm8k"

    def parse_row(self, row: Mapping[str, Any]) -> Example:
        """Validates a GSM8K row and builds its example (meta: the normalized final number)."""
        question = _require_text(row, "question")
        solution = _require_text(row, "answer")
        final = hashes_answer(solution)
        if final is None or numbers_in(final) != [final]:
            raise RowError(f"key 'answer' must end with '#### <number>', got {solution[-40:]!r}")
        return self.make_example(question, final, gsm8k_target(solution, final), numeric=True)


class MathTask(MathAnswerTask):
    """MATH competition problems (Hendrycks et al.): the train file and MATH500 alike.

    Rows are ``{"problem": str, "answer": str}`` with the final answer in LaTeX. A row whose
    answer is ``null`` or blank (4 of the 7474 MATH train rows) is kept with meta answer ``""``
    and target ``""``: it always scores 0.0, and ``data.require_targets`` drops it from SFT.
    The SFT target is ``\\boxed{<answer>}``.
    """

    name = "math"

    def parse_row(self, row: Mapping[str, Any]) -> Example:
        """Validates a MATH row and builds its example (meta: the LaTeX answer)."""
        problem = _require_text(row, "problem")
        answer = require_key(row, "answer")
        if answer is not None and not isinstance(answer, str):
            raise RowError(f"key 'answer' must be a string or null, got {type(answer).__name__}")
        answer = (answer or "").strip()
        return self.make_example(problem, answer, f"\\boxed{{{answer}}}" if answer else "")
