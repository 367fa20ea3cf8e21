"""Shared base of the code tasks: rewards from running the program in the sandbox."""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.sandbox import SandboxJob, SandboxLimits, SandboxResult, run_many
from bgpo_lightning.sandbox.runner import check_isolation
from bgpo_lightning.tasks.base import Example, Task


class CodeTask(Task):
    """A task whose completions are programs, rewarded 1.0 iff every test passes, else 0.0.

    Each completion runs in its own sandbox (see :mod:`bgpo_lightning.sandbox`); tests run in
    a separate trusted process, so neither printing, exit codes nor tampering with the
    interpreter can fake a pass. The dataset's code the tests rely on (HumanEval's helper
    functions, MBPP's setup objects) runs in that process too, as the job's ``setup``: only
    the function under test comes from the program. :meth:`score_batch` runs a whole batch
    in parallel, once.

    Args:
        limits: Sandbox limits, as :class:`~bgpo_lightning.sandbox.SandboxLimits` fields
            (e.g. ``{"wall_seconds": 5, "memory_bytes": 536870912}``); missing ones default.
        workers: Programs run at once by :meth:`score_batch`; ``None`` for one per CPU.
        isolation: ``"auto"``, ``"required"`` or ``"off"``, see
            :func:`~bgpo_lightning.sandbox.run_program`.
    """

    data_hint = "a JSON-lines file"  # what generate()'s error asks for

    def __init__(
        self,
        limits: Mapping[str, Any] | None = None,
        workers: int | None = None,
        isolation: str = "auto",
    ) -> None:
        self.limits = SandboxLimits.from_mapping(limits)
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1 or None, got {workers}")
        self.workers = workers
        self.isolation = check_isolation(isolation)

    @abc.abstractmethod
    def job(self, completion: str, example: Example) -> SandboxJob:
        """The program a completion stands for, with the example's tests."""

    def run(self, completions: Sequence[str], examples: Sequence[Example]) -> list[SandboxResult]:
        """Runs every completion against its example's tests, in parallel, in order."""
        jobs = [self.job(c, e) for c, e in zip(completions, examples, strict=True)]
        return run_many(jobs, self.limits, self.workers, self.isolation)

    def reward(self, completion: str, example: Example) -> float:
        """1.0 if the completion's program passes all the example's tests, else 0.0."""
        return 1.0 if self.run([completion], [example])[0].passed else 0.0

    def accuracy(self, completion: str, example: Example) -> float:
        """Same as :meth:`reward` (runs the program again: prefer :meth:`score_batch`)."""
        return self.reward(completion, example)

    def score_batch(
        self, completions: Sequence[str], examples: Sequence[Example]
    ) -> list[tuple[float, float]]:
        """Reward and accuracy of each completion from one parallel run of the batch."""
        return [(1.0, 1.0) if r.passed else (0.0, 0.0) for r in self.run(completions, examples)]

    def generate(self, n: int, seed: int, exclude: Collection[str] = frozenset()) -> list[Example]:
        """Code tasks have no generator.

        Raises:
            ConfigError: Always, asking for a data path.
        """
        raise ConfigError(
            f"task {self.name!r} cannot generate examples: set a data path or source for "
            f"every split ({self.data_hint})"
        )
