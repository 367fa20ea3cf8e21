"""Countdown: combine the given numbers with + - * / to reach a target (d1 reward)."""

from __future__ import annotations

import operator
import random
import re
from collections.abc import Collection, Mapping, Sequence
from fractions import Fraction
from typing import Any

from bgpo_lightning.tasks import d1_prompts
from bgpo_lightning.tasks.base import (
    Example,
    RowError,
    Task,
    check_template,
    collect_distinct,
    extract_answer,
    is_int,
    require_key,
)
from bgpo_lightning.tasks.countdown_solver import MAX_NUMBERS, solve
from bgpo_lightning.tasks.d1_countdown import FORMAT_SCORE, d1_countdown_reward
from bgpo_lightning.tasks.d1_mode import check_decoding, check_reward_mode
from bgpo_lightning.tasks.safe_arith import evaluate

# Short on purpose: for a character-level policy, where every character is a token.
SHORT_PROMPT = "Countdown {numbers} to {target}:"
D1_PROMPT = d1_prompts.COUNTDOWN_PROMPT
D1_TARGET = d1_prompts.ANSWER_TARGET

MAX_VALUE = 10**6  # largest number accepted in data files
MAX_TARGET = 10**9

_FIELDS = ("numbers", "nums", "target", "solution")
_NUMBER = re.compile(r"[0-9]+")
# Lenient mode: d1's character whitelist, ASCII only (d1's \d and \s accept other scripts).
_ALLOWED = re.compile(r"[0-9+\-*/().\s]+", re.ASCII)
_TOLERANCE = Fraction(1, 10**5)
_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def equation_of(completion: str) -> str:
    """The equation a completion proposes: its answer, left of any ``=``, stripped."""
    return extract_answer(completion).split("=", 1)[0].strip()


def _same_numbers(tokens: list[str], numbers: Sequence[int]) -> bool:
    # Compare as digit strings first: int() refuses strings over 4300 digits.
    normalized = [t.lstrip("0") or "0" for t in tokens]
    if any(len(t) > 18 for t in normalized):
        return False
    return sorted(int(t) for t in normalized) == sorted(numbers)


def lenient_reward(completion: str, numbers: Sequence[int], target: int) -> float:
    """The lenient reward: 1.0 correct, 0.1 formed but wrong, 0.0 without an equation.

    The equation is the answer (:func:`~bgpo_lightning.tasks.base.extract_answer`: untagged
    and unclosed answers count) left of any ``=``. Without ASCII digits it scores 0.0. It
    scores 0.1 if its integers are not exactly the given numbers, if it has characters
    other than digits, ``+-*/().`` and whitespace, if it fails to evaluate safely (``**``,
    ``//`` and unary ``+`` are refused), or if its exact value misses the target by 1e-5 or
    more; otherwise 1.0.
    """
    equation = equation_of(completion)
    tokens = _NUMBER.findall(equation)
    if not tokens:
        return 0.0
    if not _same_numbers(tokens, numbers):
        return FORMAT_SCORE
    if not _ALLOWED.fullmatch(equation):
        return FORMAT_SCORE
    try:
        value = evaluate(equation)
    except Exception:  # Untrusted text: any failure is just a wrong answer.
        return FORMAT_SCORE
    return 1.0 if abs(value - target) < _TOLERANCE else FORMAT_SCORE


class CountdownTask(Task):
    """Countdown with the d1 reward: 1.0 correct, 0.1 well-formed but wrong, 0.0 no equation.

    Args:
        prompt_template: Prompt format with ``{target}`` and the numbers as ``{numbers}``
            (comma separated, ``3,5,2``) or ``{nums}`` (a Python list, ``[3, 5, 2]``).
            Default: d1's exact prompt; :data:`SHORT_PROMPT` suits character-level models.
        target_template: SFT response format with ``{solution}``, the solver's expression.
            Default: ``"<answer>\\n{solution}\\n</answer>"``, the layout d1's prompt shows.
        decoding: ``"first_eos"`` (default: text after the model's end-of-text is not part
            of its answer) or ``"full"``: the whole fixed-length response, special tokens
            skipped, as d1 decodes it (use it for paper comparisons).
        reward_mode: ``"d1"``: exactly d1's reward (see
            :func:`~bgpo_lightning.tasks.d1_countdown.d1_countdown_reward`). ``"lenient"``:
            also scores untagged and unclosed answers and the part left of an ``=``, with
            exact arithmetic over ``+ - * /`` and unary minus only.
        num_numbers: How many numbers a generated example has (chosen uniformly).
        max_number: Generated numbers are drawn from ``[1, max_number]``.
        min_target: Smallest generated target.
        max_target: Largest generated target.
    """

    name = "countdown"

    def __init__(
        self,
        prompt_template: str = D1_PROMPT,
        target_template: str = D1_TARGET,
        num_numbers: Sequence[int] = (3,),
        max_number: int = 100,
        min_target: int = 1,
        max_target: int = 100,
        reward_mode: str = "d1",
        decoding: str = "first_eos",
    ) -> None:
        num_numbers = tuple(num_numbers)
        if not num_numbers or not all(2 <= k <= MAX_NUMBERS for k in num_numbers):
            raise ValueError(f"num_numbers must be in [2, {MAX_NUMBERS}], got {num_numbers}")
        if not 1 <= max_number <= MAX_VALUE:
            raise ValueError(f"max_number must be in [1, {MAX_VALUE}], got {max_number}")
        if not 1 <= min_target <= max_target:
            raise ValueError(f"need 1 <= min_target <= max_target, got {min_target}, {max_target}")
        self.prompt_template = check_template(
            prompt_template,
            kind="prompt_template",
            allowed=_FIELDS,
            required=("target",),
        )
        if "{numbers}" not in prompt_template and "{nums}" not in prompt_template:
            raise ValueError(
                f"prompt_template {prompt_template!r} must contain {{numbers}} or {{nums}}"
            )
        self.target_template = check_template(
            target_template, kind="target_template", allowed=_FIELDS, required=("solution",)
        )
        self.num_numbers = num_numbers
        self.max_number = max_number
        self.min_target = min_target
        self.max_target = max_target
        self.reward_mode = check_reward_mode(reward_mode)
        self.cut_at_eos = check_decoding(decoding) == "first_eos"

    def make_example(self, numbers: Sequence[int], target: int, solution: str | None) -> Example:
        """Builds an example; an unsolvable one (``solution is None``) gets target ``""``."""
        numbers = tuple(numbers)
        fields = {
            "numbers": ",".join(map(str, numbers)),
            "nums": str(list(numbers)),
            "target": target,
            "solution": solution or "",
        }
        return Example(
            prompt=self.prompt_template.format(**fields),
            target=self.target_template.format(**fields) if solution else "",
            meta={"numbers": numbers, "target": target, "solvable": solution is not None},
        )

    def reward(self, completion: str, example: Example) -> float:
        """1.0 correct, 0.1 formed but wrong, 0.0 without an equation, per ``reward_mode``."""
        numbers, target = example.meta["numbers"], example.meta["target"]
        if self.reward_mode == "d1":
            return d1_countdown_reward(completion, numbers, target)
        return lenient_reward(completion, numbers, target)

    def parse_row(self, row: Mapping[str, Any]) -> Example:
        """Validates ``{"numbers": [int, ...], "target": int}`` and solves it."""
        numbers = require_key(row, "numbers")
        target = require_key(row, "target")
        if not isinstance(numbers, list) or not all(is_int(x) for x in numbers):
            raise RowError("key 'numbers' must be a list of integers")
        if not 2 <= len(numbers) <= MAX_NUMBERS:
            raise RowError(f"key 'numbers' must hold 2 to {MAX_NUMBERS} numbers, got {numbers}")
        if not all(1 <= x <= MAX_VALUE for x in numbers):
            raise RowError(f"key 'numbers' must be in [1, {MAX_VALUE}], got {numbers}")
        if not is_int(target):
            raise RowError(f"key 'target' must be an integer, got {target!r}")
        if abs(target) > MAX_TARGET:
            raise RowError(f"key 'target' must be in [-{MAX_TARGET}, {MAX_TARGET}], got {target}")
        return self.make_example(numbers, target, solve(numbers, target))

    def generate(self, n: int, seed: int, exclude: Collection[str] = frozenset()) -> list[Example]:
        """Targets are values of random expressions over random numbers.

        Every example is solvable and its SFT target is the solver's expression; see
        :meth:`Task.generate` for the arguments.
        """
        rng = random.Random(seed)

        def sample() -> Example | None:
            numbers = [rng.randint(1, self.max_number) for _ in range(rng.choice(self.num_numbers))]
            value = self._random_value(numbers, rng)
            if value is None or value.denominator != 1:
                return None
            target = int(value)
            if not self.min_target <= target <= self.max_target:
                return None
            solution = solve(numbers, target)
            if solution is None:  # Impossible: the random expression reaches the target.
                raise AssertionError(f"solver missed {numbers} -> {target}")
            return self.make_example(numbers, target, solution)

        return collect_distinct(n, sample, exclude)

    @staticmethod
    def _random_value(numbers: Sequence[int], rng: random.Random) -> Fraction | None:
        """Value of a random expression tree using each number once (None: divides by 0)."""
        values = [Fraction(x) for x in numbers]
        while len(values) > 1:
            i, j = rng.sample(range(len(values)), 2)
            a, b = values[i], values[j]
            op = rng.choice("+-*/")
            if op == "/" and b == 0:
                return None
            result = _OPS[op](a, b)
            values = [v for k, v in enumerate(values) if k not in (i, j)] + [result]
        return values[0]
