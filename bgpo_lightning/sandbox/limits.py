"""Resource limits of one sandboxed run."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SandboxLimits:
    """What one run of an untrusted program may use.

    Attributes:
        wall_seconds: Wall-clock limit of the whole run (start-up, program and tests); past it
            every process of the run is killed and the status is ``timeout``.
        cpu_seconds: CPU time of the program's process (``RLIMIT_CPU``, rounded up to whole
            seconds); each process the program forks has its own.
        memory_bytes: Address space of the program's process (``RLIMIT_AS``).
        max_processes: Processes and threads the program's user may have at once
            (``RLIMIT_NPROC``; with namespaces or as root counted for this run alone).
        max_output_bytes: Bytes of standard output, and separately of standard error, kept
            from the program; producing more ends the run with status ``output_limit``.
        max_file_bytes: Largest file the program may write (``RLIMIT_FSIZE``).
        disk_bytes: Size of the program's private writable ``/tmp`` (a tmpfs) when the
            mount namespace is available.
        max_open_files: File descriptors the program may hold (``RLIMIT_NOFILE``).
    """

    wall_seconds: float = 10.0
    cpu_seconds: float = 5.0
    memory_bytes: int = 1 << 30
    max_processes: int = 16
    max_output_bytes: int = 64 << 10
    max_file_bytes: int = 16 << 20
    disk_bytes: int = 64 << 20
    max_open_files: int = 64

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(
                    f"SandboxLimits.{field.name} must be a positive number, got {value!r}"
                )
            if field.type == "int" and not isinstance(value, int):
                raise ValueError(f"SandboxLimits.{field.name} must be an integer, got {value!r}")
        if self.memory_bytes < 64 << 20:
            raise ValueError("SandboxLimits.memory_bytes must be at least 64 MiB for Python")
        if self.max_open_files < 8:
            raise ValueError("SandboxLimits.max_open_files must be at least 8")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> SandboxLimits:
        """Builds limits from a mapping (e.g. a YAML section); missing keys keep defaults.

        Raises:
            ValueError: For an unknown key, naming the known ones, or a bad value.
        """
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown sandbox limit(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The limits as a plain dict (what the launcher receives)."""
        return dataclasses.asdict(self)
