"""Which isolation layers the sandbox gets on this machine.

The layers are set up by the launcher and the init process (see :mod:`.inside.boot`), each
one tried and, with ``isolation="auto"``, skipped with its reason where the machine refuses
it (no user namespaces in a container, no libseccomp, ...). This module runs one trivial
program to find out which, once per process and mode.
"""

from __future__ import annotations

import functools

from bgpo_lightning.sandbox.limits import SandboxLimits
from bgpo_lightning.sandbox.runner import check_isolation, run_program

# Layers without which untrusted code can reach the network, the host's files or processes.
ESSENTIAL = ("pid namespace", "network namespace", "mount namespace", "filesystem")


@functools.cache
def isolation_report(isolation: str = "auto") -> dict[str, str]:
    """Layer name -> ``"on ..."`` or ``"off (reason)"`` for a run in ``isolation`` mode.

    A sandbox that fails to start at all is reported as ``{"sandbox": "error: ..."}``.
    """
    check_isolation(isolation)
    result = run_program("", "", SandboxLimits(wall_seconds=60.0), isolation)
    if not result.isolation:
        return {"sandbox": f"error: {result.status.value}: {result.detail}"}
    return dict(result.isolation)


def fully_isolated(layers: dict[str, str]) -> bool:
    """Whether every essential layer is on."""
    return all(layers.get(name, "").startswith("on") for name in ESSENTIAL)


def describe_isolation(isolation: str = "auto") -> str:
    """One line per layer, for logs and reports."""
    return "\n".join(f"{name}: {value}" for name, value in isolation_report(isolation).items())
