"""The reward modes and response decodings of the Countdown and Sudoku tasks."""

from __future__ import annotations

# "d1": exactly d1's reward functions (paper comparisons). "lenient": this project's earlier
# rewards, which also score untagged or unclosed answers; the embedded default uses it.
REWARD_MODES = ("d1", "lenient")


def check_reward_mode(mode: str) -> str:
    """Returns ``mode`` if it is one of :data:`REWARD_MODES`, else raises ValueError."""
    if mode not in REWARD_MODES:
        raise ValueError(f"reward_mode must be one of {REWARD_MODES}, got {mode!r}")
    return mode


# How a response becomes the text a reward reads. "first_eos": up to the first end-of-text
# token (default: what the model wrote after it is not its answer). "full": the whole
# fixed-length response with special tokens skipped, as d1 decodes it (paper comparisons).
DECODINGS = ("first_eos", "full")


def check_decoding(decoding: str) -> str:
    """Returns ``decoding`` if it is one of :data:`DECODINGS`, else raises ValueError."""
    if decoding not in DECODINGS:
        raise ValueError(f"decoding must be one of {DECODINGS}, got {decoding!r}")
    return decoding
