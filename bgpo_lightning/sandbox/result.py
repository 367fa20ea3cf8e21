"""The outcome of one sandboxed run."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class Status(str, enum.Enum):
    """How a run ended; only :attr:`PASSED` means the tests passed."""

    PASSED = "passed"
    FAILED = "failed"  # a test failed, the program raised or exited early
    TIMEOUT = "timeout"  # wall-clock or CPU limit
    MEMORY = "memory"  # the program ran out of its address space
    OUTPUT_LIMIT = "output_limit"  # too much standard output or error
    ERROR = "error"  # the sandbox itself failed: nothing is known about the program


@dataclass(frozen=True)
class SandboxResult:
    """What the host learned about a run.

    Attributes:
        status: How the run ended.
        exit_code: The program process's exit status, or minus the signal that ended it;
            ``None`` if unknown. Never decides a pass.
        stdout: The program's standard output, at most ``max_output_bytes`` of it, decoded as
            UTF-8 with replacement.
        stderr: Same for standard error.
        duration_s: Wall-clock seconds from start to clean-up.
        detail: Why it did not pass, e.g. ``"tests line 3: AssertionError"``.
        truncated: Whether output was cut at ``max_output_bytes``.
        isolation: Isolation layers of the run, name -> ``"on ..."``/``"off (...)"``.
    """

    status: Status
    exit_code: int | None
    stdout: str
    stderr: str
    duration_s: float
    detail: str = ""
    truncated: bool = False
    isolation: Mapping[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True iff the harness saw every test pass."""
        return self.status is Status.PASSED
