"""Pulling the program out of a model's completion, for the code tasks.

Rules, in order (the same for every code task):

1. Markdown fences: a complete block opened by a line starting with three backticks and an
   optional language tag (``python``, ``py``, ``python3`` or none; blocks tagged with another
   language are ignored) and closed by three backticks. The answer is the **last** such block
   that defines the entry point (``def name(``) when one is known, else the last block: the
   final block is the answer of a model that reasons first, and preferring the one defining
   the function skips a trailing usage example. Without a complete block, the text after the
   last opening fence counts (a generation cut off at its length limit).
2. MBPP's markers: the text before the first ``[DONE]``, after the last ``[BEGIN]`` if any
   (MBPP prompts end with ``[BEGIN]``), then rule 1 within it.
3. Bare code: HumanEval completions may be a function body continuing the prompt, or whole
   functions. The text is cut at its first line that starts at column 0 and is not code a
   module may hold after a function (``def``, ``class``, ``import``, ``from``, ``@``,
   ``async``, a comment), i.e. at prose or at top-level calls such as ``print(...)`` or
   ``if __name__ == ...``.

For HumanEval the prompt (its imports, helper functions and the stub of the entry point) is
always kept in front: the extracted code is appended to it, as a continuation when it is an
indented body, else after a newline, where a full definition replaces the stub.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)^[ \t]*```", re.M | re.S)
_OPEN_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n", re.M)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}
_MODULE_LINE = re.compile(r"(def|class|import|from|async)\b|@|#")
_BEGIN, _DONE = "[BEGIN]", "[DONE]"


def defines(code: str, name: str) -> bool:
    """Whether ``code`` has a top-level ``def name(`` (or ``async def``)."""
    return re.search(rf"^(async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", code, re.M) is not None


def fenced_code(text: str, entry_point: str | None = None) -> str | None:
    """The answer's fenced code block (rule 1), or ``None`` without a fence."""
    blocks = [body for tag, body in _FENCE.findall(text) if tag.lower() in _PYTHON_TAGS]
    if blocks:
        if entry_point:
            defining = [b for b in blocks if defines(b, entry_point)]
            if defining:
                return defining[-1]
        return blocks[-1]
    if _FENCE.search(text):  # only blocks of other languages
        return None
    opened = list(_OPEN_FENCE.finditer(text))
    if opened and opened[-1].group(1).lower() in _PYTHON_TAGS:
        return text[opened[-1].end() :]
    return None


def bare_code(text: str) -> str:
    """Unfenced code cut at its first top-level line that is not module code (rule 3)."""
    kept = []
    for line in text.splitlines(keepends=True):
        if line.strip() and not line[0].isspace() and not _MODULE_LINE.match(line):
            break
        kept.append(line)
    return "".join(kept)


def extract_code(text: str, entry_point: str | None = None) -> str:
    """The program in a completion: fenced (rule 1), else bare (rule 3)."""
    fenced = fenced_code(text, entry_point)
    return fenced if fenced is not None else bare_code(text)


def mbpp_code(completion: str, entry_point: str | None = None) -> str:
    """The program of an MBPP completion (rule 2, then 1, else the text as is)."""
    text = completion.split(_DONE, 1)[0]
    if _BEGIN in text:
        text = text.rsplit(_BEGIN, 1)[1]
    fenced = fenced_code(text, entry_point)
    return (fenced if fenced is not None else text).strip("\n") + "\n"


def humaneval_program(prompt: str, completion: str, entry_point: str) -> str:
    """The prompt followed by the completion's code, ready to run against HumanEval's tests."""
    code = extract_code(completion, entry_point)
    if defines(code, entry_point) or not code[:1].isspace():
        return prompt.rstrip("\n") + "\n\n" + code.strip("\n") + "\n"
    return prompt + code.rstrip() + "\n"
