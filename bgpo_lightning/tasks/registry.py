"""Task registry: maps the task names used in configs to task classes."""

from __future__ import annotations

from typing import Any

from bgpo_lightning.errors import ConfigError
from bgpo_lightning.tasks.base import Task
from bgpo_lightning.tasks.countdown import CountdownTask
from bgpo_lightning.tasks.humaneval import HumanEvalTask
from bgpo_lightning.tasks.math_mix import MathMixTask
from bgpo_lightning.tasks.math_tasks import Gsm8kTask, MathTask
from bgpo_lightning.tasks.mbpp import MbppTask
from bgpo_lightning.tasks.sudoku import SudokuTask

TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (
        CountdownTask,
        SudokuTask,
        Gsm8kTask,
        MathTask,
        MathMixTask,
        HumanEvalTask,
        MbppTask,
    )
}


def get_task(name: str, **kwargs: Any) -> Task:
    """Builds a task by name.

    Args:
        name: A key of :data:`TASKS`, e.g. ``"sudoku"``.
        **kwargs: Constructor arguments of the task class.

    Returns:
        The task.

    Raises:
        ConfigError: For an unknown name, listing the known ones (a ValueError).
    """
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of: {', '.join(sorted(TASKS))}")
    return TASKS[name](**kwargs)
