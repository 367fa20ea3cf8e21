"""d1's answer extraction: the last *closed* ``<answer>...</answer>`` span, or nothing."""

from __future__ import annotations

_OPEN = "<answer>"
_CLOSE = "</answer>"


def last_closed_answer(text: str) -> str | None:
    """The stripped body of the last closed answer span, as d1 reads it; None without one.

    d1 takes the last match of ``re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)``.
    Matches are scanned left to right and each runs from an opening tag to the *first*
    closing tag after it, so ``<answer>a<answer>b</answer>`` yields ``a<answer>b``, and an
    opening tag without a later closing tag yields nothing. This loop finds the same spans
    in linear time (the regex is quadratic on many unclosed opening tags).
    """
    body = None
    start = text.find(_OPEN)
    while start >= 0:
        end = text.find(_CLOSE, start + len(_OPEN))
        if end < 0:
            break
        body = text[start + len(_OPEN) : end]
        start = text.find(_OPEN, end + len(_CLOSE))
    return None if body is None else body.strip()
