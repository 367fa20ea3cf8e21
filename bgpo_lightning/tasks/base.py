"""Task interface shared by all reasoning tasks: examples, rewards, loading and generation.

A task knows nothing about models or tokenizers: it turns data rows into text prompts and
reference responses, and scores completion strings.
"""

from __future__ import annotations

import abc
import string
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from bgpo_lightning.tasks.sources import SourceRowError, read_rows

_OPEN_TAG = "<answer>"
_CLOSE_TAG = "</answer>"


# Not frozen: Lightning's precision plugins walk batches with apply_to_collection, which
# rebuilds dataclasses field by field and refuses frozen ones.
@dataclass
class Example:
    """One task instance.

    Attributes:
        prompt: Text given to the model, already formatted from the task's prompt template.
        target: Reference response for supervised warm-start (SFT), formatted as the model
            should answer; ``""`` when no reference is known (e.g. an unsolvable row).
        meta: What the reward needs, e.g. ``{"puzzle": ..., "solution": ...}``.
    """

    prompt: str
    target: str
    meta: Mapping[str, Any]


class DatasetFormatError(ValueError):
    """A data file row is malformed; the message names the file, the line and the problem."""


class RowError(ValueError):
    """Raised by :meth:`Task.parse_row` for a bad row; :meth:`Task.load` adds file and line."""


def extract_answer(text: str) -> str:
    """Returns the answer part of a completion.

    Args:
        text: A model completion.

    Returns:
        The stripped content of the last ``<answer>...</answer>`` span. An unclosed last tag
        yields the text after it (truncated generations still get scored). Without any
        ``<answer>`` tag the whole text, stripped.
    """
    start = text.rfind(_OPEN_TAG)
    if start < 0:
        return text.strip()
    body = text[start + len(_OPEN_TAG) :]
    end = body.find(_CLOSE_TAG)
    if end >= 0:
        body = body[:end]
    return body.strip()


def check_template(
    template: str, *, kind: str, allowed: Iterable[str], required: Iterable[str] = ()
) -> str:
    """Validates a ``str.format`` template's placeholders early, at task construction.

    Args:
        template: The template string.
        kind: What the template is for, used in error messages (e.g. ``"prompt_template"``).
        allowed: Placeholder names the task fills in.
        required: Placeholder names that must appear.

    Returns:
        The template, unchanged.

    Raises:
        ValueError: On a syntax error, an unknown or positional placeholder, or a missing
            required one.
    """
    allowed = set(allowed)
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as err:
        raise ValueError(f"{kind} {template!r} is not a valid format string: {err}") from None
    unknown = sorted(fields - allowed)
    if unknown:
        raise ValueError(
            f"{kind} {template!r} uses unknown placeholder(s) {unknown}; allowed: {sorted(allowed)}"
        )
    missing = sorted(set(required) - fields)
    if missing:
        raise ValueError(f"{kind} {template!r} must contain placeholder(s) {missing}")
    return template


class Task(abc.ABC):
    """A reasoning task with a d1-style reward.

    Subclasses set :attr:`name` and implement :meth:`reward`, :meth:`parse_row` and
    :meth:`generate`; :meth:`load` and :meth:`accuracy` have shared defaults.
    """

    name: ClassVar[str]
    #: Whether responses are cut at their first end-of-text token before scoring.
    cut_at_eos: bool = True

    @abc.abstractmethod
    def reward(self, completion: str, example: Example) -> float:
        """Scores a completion; never raises on any completion string.

        Args:
            completion: The generated text (prompt excluded).
            example: The example the completion answers.

        Returns:
            The reward, as defined by the d1 paper for this task.
        """

    def accuracy(self, completion: str, example: Example) -> float:
        """What "accuracy" means for the task, in [0, 1]; defaults to an exact-solve indicator.

        Args:
            completion: The generated text (prompt excluded).
            example: The example the completion answers.

        Returns:
            1.0 when the reward is the full score 1.0, else 0.0.
        """
        return 1.0 if self.reward(completion, example) == 1.0 else 0.0

    def score_batch(
        self, completions: Sequence[str], examples: Sequence[Example]
    ) -> list[tuple[float, float]]:
        """Reward and accuracy of each completion, in order.

        Tasks whose scoring is costly (running programs) override this to score the whole
        batch in parallel and only once; the default calls :meth:`reward` and :meth:`accuracy`.

        Args:
            completions: Generated texts (prompts excluded).
            examples: The example each completion answers, same length.

        Returns:
            One ``(reward, accuracy)`` pair per completion.
        """
        return [
            (self.reward(c, e), self.accuracy(c, e))
            for c, e in zip(completions, examples, strict=True)
        ]

    @abc.abstractmethod
    def parse_row(self, row: Mapping[str, Any]) -> Example:
        """Validates one decoded JSON row and builds its example.

        Args:
            row: The decoded JSON object.

        Returns:
            The example.

        Raises:
            RowError: Naming the offending key or problem (file and line are added by
                :meth:`load`).
        """

    @abc.abstractmethod
    def generate(self, n: int, seed: int, exclude: Collection[str] = frozenset()) -> list[Example]:
        """Generates examples procedurally.

        Args:
            n: Number of examples.
            seed: Seed of a private ``random.Random``; same seed, same examples.
            exclude: Prompts not to produce, e.g. those of a training set, so that splits are
                disjoint.

        Returns:
            ``n`` examples with distinct prompts, none in ``exclude``.

        Raises:
            ValueError: If ``n`` distinct examples cannot be found.
        """

    def load(self, path: str | Path, limit: int | None = None) -> list[Example]:
        """Reads a data source, validating every row it reads.

        Args:
            path: A JSON-lines file (``.jsonl`` or ``.jsonl.gz``; blank lines are skipped) or
                ``hf:<dataset>[:<config>]:<split>`` (see :mod:`bgpo_lightning.tasks.sources`).
            limit: Read only the first ``limit`` rows (``None``: all).

        Returns:
            The examples, in source order.

        Raises:
            FileNotFoundError: If the file does not exist.
            DatasetFormatError: On the first bad row, naming file, 1-based line and problem.
        """
        examples: list[Example] = []
        rows = read_rows(path)
        try:
            while limit is None or len(examples) < limit:
                try:
                    where, row = next(rows)
                except StopIteration:
                    break
                try:
                    examples.append(self.parse_row(row))
                except RowError as err:
                    raise DatasetFormatError(f"{self.name}: {where}: {err}") from None
        except SourceRowError as err:
            raise DatasetFormatError(f"{self.name}: {err}") from None
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{self.name}: {err}") from None
        if not examples and limit != 0:
            raise DatasetFormatError(f"{self.name}: {path}: source has no rows")
        return examples


def require_key(row: Mapping[str, Any], key: str) -> Any:
    """Returns ``row[key]`` or raises :class:`RowError` naming the missing key."""
    if key not in row:
        raise RowError(f"missing key {key!r}")
    return row[key]


def is_int(value: Any) -> bool:
    """True for JSON integers (``bool`` is an ``int`` subclass in Python but not a number here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def collect_distinct(
    n: int, sample: Callable[[], Example | None], exclude: Collection[str] = frozenset()
) -> list[Example]:
    """Draws examples until ``n`` have distinct prompts outside ``exclude``.

    Args:
        n: Number of examples wanted.
        sample: Draws one candidate from the caller's seeded RNG, or ``None`` to reject it.
        exclude: Prompts that must not be produced.

    Returns:
        ``n`` examples in draw order.

    Raises:
        ValueError: If ``n`` is negative or too many draws in a row fail, so that an
            exhausted example space errors out instead of looping forever.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    seen = set(exclude)
    out: list[Example] = []
    misses, max_misses = 0, 10_000 + 100 * n
    while len(out) < n:
        example = sample()
        if example is None or example.prompt in seen:
            misses += 1
            if misses > max_misses:
                raise ValueError(
                    f"could only generate {len(out)} of {n} distinct examples; "
                    "widen the generator's ranges or ask for fewer"
                )
            continue
        seen.add(example.prompt)
        out.append(example)
    return out
