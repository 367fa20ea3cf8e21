"""Reasoning tasks (prompts, d1 rewards, data loading); independent of models and tokenizers."""

from bgpo_lightning.tasks.base import DatasetFormatError, Example, Task, extract_answer
from bgpo_lightning.tasks.countdown import CountdownTask
from bgpo_lightning.tasks.datamodule import PromptDataModule
from bgpo_lightning.tasks.registry import TASKS, get_task
from bgpo_lightning.tasks.sudoku import SudokuTask

__all__ = [
    "TASKS",
    "CountdownTask",
    "DatasetFormatError",
    "Example",
    "PromptDataModule",
    "SudokuTask",
    "Task",
    "extract_answer",
    "get_task",
]
