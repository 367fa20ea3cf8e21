"""Tests for sandbox limit validation."""

from __future__ import annotations

import pytest

from bgpo_lightning.sandbox import SandboxLimits


def test_defaults_and_mapping() -> None:
    limits = SandboxLimits.from_mapping({"wall_seconds": 3, "max_processes": 4})
    assert limits.wall_seconds == 3 and limits.max_processes == 4
    assert limits.cpu_seconds == SandboxLimits().cpu_seconds
    assert SandboxLimits.from_mapping(None) == SandboxLimits()
    assert set(limits.as_dict()) >= {"memory_bytes", "max_output_bytes", "max_file_bytes"}


@pytest.mark.parametrize(
    "values",
    [
        {"wall_seconds": 0},
        {"cpu_seconds": -1},
        {"memory_bytes": 1.5},
        {"memory_bytes": 1 << 20},
        {"max_processes": True},
        {"max_open_files": 2},
        {"max_output_bytes": "10"},
    ],
)
def test_invalid_values(values) -> None:
    with pytest.raises(ValueError):
        SandboxLimits.from_mapping(values)


def test_unknown_key_names_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown sandbox limit.*wall_seconds"):
        SandboxLimits.from_mapping({"timeout": 3})
