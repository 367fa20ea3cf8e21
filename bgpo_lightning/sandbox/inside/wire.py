"""Byte framing between the host, the launcher and the sandbox's processes.

Two formats:

* frames, on the launcher's standard input: an 8-byte big-endian length, then the bytes. The
  host sends three: the JSON header (settings), the program (UTF-8), the tests (JSON:
  ``{"code": ..., "setup": ..., "expose": [...]}``). The launcher reads
  them with exact ``os.read`` calls, never through a buffered reader, so that a process it
  forks before reading a frame holds no byte of that frame in its memory.
* messages, between worker and harness and on the report pipe: one JSON object per line,
  ASCII only. A reader refuses lines longer than its limit instead of buffering them.
"""

from __future__ import annotations

import json
import os
from typing import Any

_LENGTH_BYTES = 8


class WireError(Exception):
    """A frame or message is truncated, too long or not valid JSON."""


def frame(data: bytes) -> bytes:
    """The frame holding ``data``."""
    return len(data).to_bytes(_LENGTH_BYTES, "big") + data


def read_exact(fd: int, n: int) -> bytes:
    """Reads exactly ``n`` bytes from a file descriptor (unbuffered)."""
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise WireError(f"end of stream with {left} of {n} bytes unread")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, max_bytes: int) -> bytes:
    """Reads one frame; refuses one announcing more than ``max_bytes``."""
    size = int.from_bytes(read_exact(fd, _LENGTH_BYTES), "big")
    if size > max_bytes:
        raise WireError(f"frame of {size} bytes exceeds {max_bytes}")
    return read_exact(fd, size)


def message(obj: Any) -> bytes:
    """One message line; ``obj`` must be JSON-serializable."""
    return json.dumps(obj, separators=(",", ":")).encode("ascii") + b"\n"


class MessageReader:
    """Reads message lines from a file descriptor, at most ``max_bytes`` each."""

    def __init__(self, fd: int, max_bytes: int) -> None:
        self._file = open(fd, "rb", buffering=1 << 16, closefd=False)  # noqa: SIM115
        self._max = max_bytes

    def receive(self) -> Any:
        """The next message, or ``None`` at end of stream.

        Raises:
            WireError: If the line is longer than the limit, unterminated or not JSON.
        """
        line = self._file.readline(self._max + 1)
        if not line:
            return None
        if not line.endswith(b"\n"):
            raise WireError(f"message longer than {self._max} bytes or unterminated")
        try:
            return json.loads(line)
        except (ValueError, RecursionError) as err:
            raise WireError(f"invalid message: {err}") from None


def send(fd: int, obj: Any) -> None:
    """Writes one message completely to a file descriptor."""
    data = memoryview(message(obj))
    while data:
        data = data[os.write(fd, data) :]
