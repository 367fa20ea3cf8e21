"""MATH and GSM8K rows in one split, as the paper trains its math model on both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bgpo_lightning.tasks.base import Example
from bgpo_lightning.tasks.math_tasks import Gsm8kTask, MathAnswerTask, MathTask


class MathMixTask(MathAnswerTask):
    """Reads each row by its schema: GSM8K's ``question`` or MATH's ``problem``.

    Prompts, reward and targets are those of :class:`Gsm8kTask` and :class:`MathTask`, which
    share the instruction and the ``\\boxed{}`` equivalence reward, so one task scores both.
    """

    name = "math_mix"

    def parse_row(self, row: Mapping[str, Any]) -> Example:
        """A GSM8K row if it has ``question``, else a MATH row (whose errors name its keys)."""
        schema = Gsm8kTask if "question" in row else MathTask
        return schema.parse_row(self, row)
