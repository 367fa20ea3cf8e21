"""Final-answer extraction for math completions: last ``\\boxed{}``, GSM8K's ``####``, last number.

Pure string functions (no sympy): they only locate the answer; :mod:`math_grader` judges it.
"""

from __future__ import annotations

import re

# \boxed and \fbox, not e.g. \boxedx; the content follows as {group} or as one bare token.
_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_SPACES = re.compile(r"\s*")
_BARE_TOKEN = re.compile(r"[^\s${}]*")
# Tokens that matter for brace matching: an escaped character (\{, \}, \\) or a brace.
_BRACE_TOKEN = re.compile(r"\\.|[{}]", re.DOTALL)
_HASHES = re.compile(r"####[ \t]*([^\n]*)")
# A number as written in prose: an optional unary minus (not one right after a word, digit or
# closing bracket, which would be a binary minus), an optional dollar sign, digits with optional
# thousands commas, decimals, and an optional integer denominator ("3/4").
_NUMBER = re.compile(
    r"(?:(?<![\w)\]}])(?P<sign>[-\u2212]))?"
    r"(?:\\?\$\s?)?"
    r"(?<![\d.])"
    r"(?P<number>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:/(?P<denominator>\d+)(?!\d|\.\d))?"
)


def braced_group(text: str, start: int) -> tuple[str, int] | None:
    """Reads the brace group that opens at ``text[start]``.

    Escaped characters (``\\{``, ``\\}``, ``\\\\``) do not count as braces.

    Args:
        text: The text.
        start: Index of an opening ``{``.

    Returns:
        The content between the braces and the index just past the closing brace, or
        ``None`` if the group is never closed.
    """
    depth = 0
    for match in _BRACE_TOKEN.finditer(text, start):
        token = match.group()
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : match.start()], match.end()
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last top-level ``\\boxed{...}`` or ``\\fbox{...}``, stripped.

    Boxes nested inside a box belong to it; ``\\boxed 5`` (a bare token) is read up to the
    next space or ``$``, without a trailing ``.``, ``,`` or ``;``.

    Args:
        text: A completion.

    Returns:
        ``None`` if there is no box; otherwise the content of the last one, ``""`` if that box
        is empty or never closed (a truncated answer is no answer).
    """
    content: str | None = None
    pos = 0
    while (match := _BOX.search(text, pos)) is not None:
        after = match.end()
        start = _SPACES.match(text, after).end()
        if text.startswith("{", start):
            group = braced_group(text, start)
            if group is None:
                return ""  # Unclosed: it runs to the end, so it is the last box.
            content, pos = group[0].strip(), group[1]
        else:
            token = _BARE_TOKEN.match(text, start)
            content, pos = token.group().rstrip(".,;"), max(token.end(), after)
    if content is not None and len(content) >= 2 and content[0] == content[-1] == "$":
        content = content.strip("$").strip()
    return content


def normalize_number(match: re.Match[str]) -> str:
    """The number a :data:`_NUMBER` match denotes, without ``$`` or thousands commas."""
    number = match.group("number").replace(",", "")
    if match.group("denominator"):
        number = f"{number}/{match.group('denominator')}"
    return f"-{number}" if match.group("sign") else number


def numbers_in(text: str) -> list[str]:
    """All numbers in the text, normalized (``"-$1,234.50"`` gives ``"-1234.50"``)."""
    return [normalize_number(m) for m in _NUMBER.finditer(text)]


def last_number(text: str) -> str | None:
    """The last number in the text, normalized as by :func:`numbers_in`; ``None`` if none."""
    matches = list(_NUMBER.finditer(text))
    return normalize_number(matches[-1]) if matches else None


def hashes_answer(text: str) -> str | None:
    """GSM8K's answer line: what follows the last ``####``.

    Returns:
        ``None`` without ``####``; else the first number on that line (normalized), or the
        stripped line if it has no number (``""`` if it is empty).
    """
    lines = _HASHES.findall(text)
    if not lines:
        return None
    line = lines[-1]
    match = _NUMBER.search(line)
    return normalize_number(match) if match else line.strip()


def extract_final_answer(text: str, boxed_only: bool = False) -> str | None:
    """The final answer of a math completion.

    In order: the last top-level ``\\boxed{}``/``\\fbox{}`` (if the completion has a box, it
    decides, even when it is empty or unclosed); else GSM8K's ``#### <answer>`` line; else the
    last number in the text. With ``boxed_only`` only the box counts, as BGPO's code scores.

    Args:
        text: A completion (any string).
        boxed_only: Read nothing but the last box.

    Returns:
        The answer string, or ``None`` if the completion has no answer.
    """
    if boxed_only:
        return last_boxed(text) or None
    for found in (last_boxed(text), hashes_answer(text)):
        if found is not None:
            return found or None
    return last_number(text)
