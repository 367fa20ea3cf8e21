"""What a sandboxed process gives up before it runs anything: descriptors, limits, identity.

Each of the worker and the harness, right after being forked by the init process, calls
:func:`isolate_descriptors` then :func:`confine`. The order inside :func:`confine` matters:
limits are set while the process may still raise them, the identity change clears the
dumpable flag and the parent-death signal so both are set after it, and ``no_new_privs``
comes last so that no later ``execve`` can regain anything.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
from collections.abc import Iterable, Mapping

from . import linux

# How a process sheds privilege; chosen by the launcher from what it could set up.
IDENTITY_UID = "uid"  # running as root: switch to an unused user id (and group id)
IDENTITY_CAPS = "caps"  # in our user namespace: keep the mapped id, drop every capability
IDENTITY_NONE = "none"  # neither is possible: keep the caller's identity


def isolate_descriptors(keep: Iterable[int]) -> None:
    """Points 0, 1 and 2 at ``/dev/null`` unless kept, and closes every other descriptor.

    Args:
        keep: Descriptors to leave open, e.g. the process's pipes.
    """
    keep = sorted(set(keep))
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        if fd not in keep:
            os.dup2(devnull, fd)
    low = 3
    for fd in keep + [1 << 20]:
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    if devnull not in keep and devnull > 2:
        with contextlib.suppress(OSError):  # usually closed by closerange already
            os.close(devnull)


def confine(
    identity: str,
    uid: int | None,
    gid: int | None,
    limits: Mapping[int, int],
    dumpable: bool,
) -> None:
    """Applies resource limits, sheds privilege and sets ``no_new_privs``.

    Args:
        identity: One of :data:`IDENTITY_UID`, :data:`IDENTITY_CAPS`, :data:`IDENTITY_NONE`.
        uid: Target user id for :data:`IDENTITY_UID`.
        gid: Target group id for :data:`IDENTITY_UID`.
        limits: ``resource.RLIMIT_*`` to a soft limit; the hard limit is set one higher for
            ``RLIMIT_CPU`` (so the soft one delivers ``SIGXCPU`` first) and equal otherwise,
            never above the current hard limit.
        dumpable: ``False`` forbids same-user processes to ptrace this one or read its
            ``/proc/<pid>/mem`` and descriptors.

    Raises:
        OSError: If any step fails; the caller must then not run untrusted code.
    """
    for kind, soft in limits.items():
        _, current_hard = resource.getrlimit(kind)
        hard = soft + 1 if kind == resource.RLIMIT_CPU else soft
        if current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
            soft = min(soft, hard)
        resource.setrlimit(kind, (soft, hard))
    if identity == IDENTITY_UID:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if os.getresuid() != (uid, uid, uid):
            raise OSError(f"could not switch to user id {uid}")
    elif identity == IDENTITY_CAPS:
        linux.drop_capabilities()
    if not dumpable:
        linux.prctl(linux.PR_SET_DUMPABLE, 0)
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
