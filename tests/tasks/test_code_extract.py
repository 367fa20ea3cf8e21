"""Tests for pulling programs out of completions."""

from __future__ import annotations

import pytest

from bgpo_lightning.tasks.code_extract import (
    bare_code,
    defines,
    extract_code,
    fenced_code,
    humaneval_program,
    mbpp_code,
)

PROMPT = 'from typing import List\n\n\ndef f(xs: List[int]) -> int:\n    """Sum."""\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```python\ndef f():\n    return 1\n```", "def f():\n    return 1\n"),
        ("```\nx = 1\n```", "x = 1\n"),
        ("```py\nx = 1\n```\ntext\n```python\ny = 2\n```", "y = 2\n"),  # last block
        (
            "```python\ndef f():\n    pass\n```\nUsage:\n```python\nprint(f())\n```",
            "def f():\n    pass\n",
        ),
        ("```bash\nls\n```\n```python\nz = 3\n```", "z = 3\n"),
        ("```python\ndef f():\n    return 1", "def f():\n    return 1"),  # cut off
        ("  ```python\n  x = 1\n  ```", "  x = 1\n"),  # indented fence
        ("```bash\nrm -rf /\n```", None),
        ("no fence at all", None),
    ],
)
def test_fenced_code(text: str, expected: str | None) -> None:
    assert fenced_code(text, "f") == expected


def test_defines() -> None:
    assert defines("def f(x):\n    pass", "f") and defines("async def f():", "f")
    assert not defines("    def f(x):", "f") and not defines("def ff(x):", "f")


def test_bare_code_stops_at_prose_and_top_level_calls() -> None:
    text = "    return 1\n\n# helper\ndef g():\n    pass\n\nprint(f())\nmore text\n"
    assert bare_code(text) == "    return 1\n\n# helper\ndef g():\n    pass\n\n"
    assert bare_code("Sure! Here it is.\n    return 1\n") == ""
    assert extract_code("import os\nfrom x import y\n@dec\nclass A:\n    pass\nif True:\n") == (
        "import os\nfrom x import y\n@dec\nclass A:\n    pass\n"
    )


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("    return sum(xs)\n", PROMPT + "    return sum(xs)\n"),  # body continuation
        (
            "    return sum(xs)\n\nprint(f([1]))\nExplanation...",
            PROMPT + "    return sum(xs)\n",
        ),
        (
            "```python\ndef f(xs):\n    return sum(xs)\n```",
            PROMPT.rstrip("\n") + "\n\ndef f(xs):\n    return sum(xs)\n",
        ),
        (
            "def f(xs):\n    return sum(xs)\n",
            PROMPT.rstrip("\n") + "\n\ndef f(xs):\n    return sum(xs)\n",
        ),
        ("I cannot do that.", PROMPT.rstrip("\n") + "\n\n\n"),
        ("", PROMPT.rstrip("\n") + "\n\n\n"),
    ],
)
def test_humaneval_program(completion: str, expected: str) -> None:
    assert humaneval_program(PROMPT, completion, "f") == expected


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("def f():\n  return 1\n[DONE]", "def f():\n  return 1\n"),
        ("def f():\n  return 1\n[DONE]\nmore [BEGIN] junk [DONE]", "def f():\n  return 1\n"),
        ("[BEGIN]\ndef f():\n  return 2\n[DONE]", "def f():\n  return 2\n"),
        ("text [BEGIN]\n```python\ndef f():\n  return 3\n```\n[DONE]", "def f():\n  return 3\n"),
        ("def f():\n  return 4", "def f():\n  return 4\n"),  # no [DONE]: cut off
        ("", "\n"),
    ],
)
def test_mbpp_code(completion: str, expected: str) -> None:
    assert mbpp_code(completion, "f") == expected
