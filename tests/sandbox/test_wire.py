"""Tests for the byte framing between host, launcher and sandbox processes."""

from __future__ import annotations

import os

import pytest

from bgpo_lightning.sandbox.inside import wire


def test_frames_are_read_exactly() -> None:
    r, w = os.pipe()
    try:
        os.write(w, wire.frame(b"abc") + wire.frame(b"") + b"rest")
        assert wire.read_frame(r, 10) == b"abc"
        assert wire.read_frame(r, 10) == b""
        assert os.read(r, 10) == b"rest"  # nothing beyond the frame was consumed
    finally:
        os.close(r)
        os.close(w)


def test_oversized_and_truncated_frames_are_refused() -> None:
    r, w = os.pipe()
    os.write(w, wire.frame(b"x" * 20))
    with pytest.raises(wire.WireError, match="exceeds"):
        wire.read_frame(r, 10)
    os.close(r)
    os.close(w)
    r, w = os.pipe()
    os.write(w, wire.frame(b"abcdef")[:-2])
    os.close(w)
    with pytest.raises(wire.WireError, match="end of stream"):
        wire.read_frame(r, 10)
    os.close(r)


def test_messages_round_trip_and_limits() -> None:
    r, w = os.pipe()
    reader = wire.MessageReader(r, max_bytes=40)
    wire.send(w, {"kind": "x", "v": [1, "é"]})
    assert reader.receive() == {"kind": "x", "v": [1, "é"]}
    os.write(w, b"not json\n")
    with pytest.raises(wire.WireError, match="invalid"):
        reader.receive()
    os.write(w, b"[" * 100 + b"\n")
    with pytest.raises(wire.WireError, match="longer"):
        reader.receive()
    os.close(w)
    os.close(r)


def test_end_of_stream_is_none() -> None:
    r, w = os.pipe()
    os.close(w)
    assert wire.MessageReader(r, 10).receive() is None
    os.close(r)
