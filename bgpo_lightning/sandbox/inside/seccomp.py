"""An optional seccomp filter for the worker, built with the system's libseccomp via ctypes.

libseccomp (``libseccomp.so.2``, the library behind systemd's and the container runtimes'
filters) resolves system call names for the running architecture; it is loaded by
:func:`load_library` before the sandbox's root is changed. Without it the filter is simply
not installed and the isolation report says so.

The filter allows everything except, answering ``EPERM``:

* calls that reach outside the sandbox or widen the kernel's attack surface: ``ptrace``,
  ``process_vm_readv/writev``, ``mount`` and the new mount API, ``chroot``, ``pivot_root``,
  ``unshare``, ``setns``, ``clone`` with a namespace flag, ``bpf``, ``perf_event_open``,
  ``userfaultfd``, ``io_uring_*``, keyrings, module loading, ``kexec``, ``reboot``, ...;
  ``clone3`` answers ``ENOSYS`` (its flags sit in memory, out of a filter's reach) so the C
  library falls back to ``clone``;
* sockets: only ``AF_UNIX`` (local pairs) with namespaces; none at all without them;
* where the worker shares its user id with other processes (in a user namespace: with the
  harness; without namespaces and not root: with the training job), signals to any process
  but the worker itself, so ``kill(-1, SIGKILL)`` cannot reach them.
"""

from __future__ import annotations

import ctypes
import errno

_ACT_ALLOW = 0x7FFF0000


def _act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


_CMP_NE = 1
_CMP_MASKED_EQ = 7
_AF_UNIX = 1
_NAMESPACE_FLAGS = (0x00020000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)

DENIED = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "syslog",
    "iopl",
    "ioperm",
    "lookup_dcookie",
)
_SIGNAL_CALLS = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")
_OTHER_SIGNAL_CALLS = ("tkill", "pidfd_open", "pidfd_send_signal", "pidfd_getfd")


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


_lib: ctypes.CDLL | None = None
_load_error = "not loaded"


def load_library() -> None:
    """Loads libseccomp if the system has it; remembers why not otherwise."""
    global _lib, _load_error
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as err:
        _load_error = f"libseccomp.so.2 not found ({err})"
        return
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    _lib = lib


def install(namespaces: bool, restrict_signals: bool, own_pid: int) -> str:
    """Installs the filter on the calling thread and its future children.

    Args:
        namespaces: Whether the process runs in the sandbox's namespaces; without them all
            sockets are denied.
        restrict_signals: Deny signals to any process but ``own_pid``.
        own_pid: The worker's process id.

    Returns:
        A short description of the installed filter.

    Raises:
        OSError: If libseccomp is missing or refuses the filter.
    """
    if _lib is None:
        raise OSError(_load_error)
    ctx = _lib.seccomp_init(_ACT_ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        eperm = _act_errno(errno.EPERM)
        for name in DENIED:
            _rule(ctx, eperm, name)
        _rule(ctx, _act_errno(errno.ENOSYS), "clone3")
        for flag in _NAMESPACE_FLAGS:
            _rule(ctx, eperm, "clone", (_CMP_MASKED_EQ, flag, flag))
        if namespaces:
            _rule(ctx, _act_errno(errno.EAFNOSUPPORT), "socket", (_CMP_NE, _AF_UNIX, 0))
            extra = "sockets: AF_UNIX only"
        else:
            _rule(ctx, eperm, "socket")
            _rule(ctx, eperm, "socketpair")
            extra = "no sockets"
        if restrict_signals:
            for name in _SIGNAL_CALLS:
                _rule(ctx, eperm, name, (_CMP_NE, own_pid, 0))
            for name in _OTHER_SIGNAL_CALLS:
                _rule(ctx, eperm, name)
            extra += ", signals to itself only"
        if _lib.seccomp_load(ctx) != 0:
            raise OSError("seccomp_load failed")
    finally:
        _lib.seccomp_release(ctx)
    return f"on (libseccomp: {len(DENIED)} calls denied, clone3 ENOSYS, {extra})"


def _rule(ctx: int, action: int, name: str, compare: tuple[int, int, int] | None = None) -> None:
    number = _lib.seccomp_syscall_resolve_name(name.encode())
    if number < 0:  # not a system call on this architecture
        return
    if compare is None:
        result = _lib.seccomp_rule_add_array(ctx, action, number, 0, None)
    else:
        op, a, b = compare
        args = (_ArgCmp * 1)(_ArgCmp(0, op, a, b))
        result = _lib.seccomp_rule_add_array(ctx, action, number, 1, args)
    if result != 0:
        raise OSError(-result, f"seccomp rule for {name} refused")
