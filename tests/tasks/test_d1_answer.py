"""d1's answer extraction: the last closed span, each from an open tag to the first close."""

from __future__ import annotations

import re

import pytest

from bgpo_lightning.tasks.d1_answer import last_closed_answer


def d1_regex(text: str) -> str | None:
    """d1's own definition, as a reference for these (short, trusted) inputs."""
    matches = re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)
    return matches[-1].strip() if matches else None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x",
        "<answer>",
        "</answer>",
        "<answer></answer>",
        "<answer> a </answer>",
        "<answer>a</answer><answer>b</answer>",
        "<answer>a</answer><answer>b",
        "<answer>a<answer>b</answer>",
        "<answer><answer>b</answer></answer>",
        "</answer><answer>a",
        "<answer>\na\nb\n</answer>\n",
        "<answer>a</answer></answer>",
        "<answer></answer></answer><answer>c</answer>",
        "<answer<answer>a</answer>",
    ],
)
def test_matches_d1_regex(text: str) -> None:
    assert last_closed_answer(text) == d1_regex(text)
