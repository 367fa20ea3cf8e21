"""The launcher and the sandbox's init process.

Process tree of one run (the launcher is forked by the host's fork server, :mod:`.zygote`,
or started as ``python -I -S``; either way with an empty environment, in a new session)::

    launcher          reads settings + program, enters the namespaces, forks init
    └─ init           pid 1 of the new pid namespace: builds the file system, forks the
       │              worker, only then reads the tests (with their trusted setup code),
       │              forks the harness, reaps, reports
       ├─ worker      confined (limits, user id, seccomp), runs the program, serves calls
       └─ harness     confined, runs the setup and tests against the worker, writes the
                      verdict

Isolation, as far as the machine allows (``isolation="auto"``; ``"required"`` fails the run
instead of degrading; ``"off"`` uses none of the namespaces):

* namespaces: user (only when not root: the one mapped id, 65534, is the host user), mount,
  pid, network (no interface but a down loopback: no network at all), IPC, UTS;
* pid 1: when init exits, the kernel kills every process left in the namespace, including
  ones that called ``setsid`` or double-forked; at the wall-clock limit the host kills the
  launcher, and init dies with it (``PR_SET_PDEATHSIG``, with a lifeline pipe closing the
  race of a launcher killed before init set it);
* the file system of :mod:`.filesystem`;
* identities of :mod:`.privileges`: as root, the worker and the harness each get their own
  unused user id, drawn at random by the host per run, so ``RLIMIT_NPROC`` counts only the
  run's own processes, files outside ``/tmp`` are read-only to them, and the worker can
  signal neither the harness nor anything outside; in a user namespace, no capabilities;
* rlimits on the worker (CPU, address space, processes, file size, open files, no core) and
  on the harness; the seccomp filter of :mod:`.seccomp` on the worker.

The init process writes a final ``{"kind": "init", ...}`` message with the isolation layers it
set up and how the worker and the harness ended. Failures of the launcher or init before the
untrusted program runs are reported as ``{"kind": "error", ...}``; a worker that cannot be
confined exits with :data:`SETUP_FAILED` before running anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import sys
import time
import traceback
from typing import Any, NoReturn

from . import filesystem, harness, linux, privileges, seccomp, wire, worker

SETUP_FAILED = 120
MAX_HEADER_BYTES = 1 << 20
MAX_SOURCE_BYTES = 64 << 20
NOBODY = 65534
_WORKER_GRACE_S = 0.05

ON = "on"


def main() -> NoReturn:
    """Entry point of the launcher process (standard input: the frames; see :mod:`.wire`)."""
    report_fd = -1
    try:
        header = json.loads(wire.read_frame(0, MAX_HEADER_BYTES))
        report_fd = header["report_fd"]
        program = wire.read_frame(0, MAX_SOURCE_BYTES).decode("utf-8", "surrogatepass")
        layers: dict[str, str] = {}
        identity = _enter_namespaces(header, layers)
        seccomp.load_library()
    except BaseException as err:  # reported, then the run is an error
        _report_error(report_fd, "launcher", err)
        os._exit(1)
    lifeline_r, lifeline_w = os.pipe()  # closes when the launcher dies, however it dies
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(lifeline_w)
            linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
            if select.select([lifeline_r], [], [], 0)[0]:  # died before the line above
                os._exit(1)
            os.close(lifeline_r)
            code = _init(header, program, layers, identity)
        except BaseException as err:
            _report_error(report_fd, "init", err)
        os._exit(code)
    os.close(lifeline_r)
    os.close(0)
    os.close(report_fd)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _enter_namespaces(header: dict[str, Any], layers: dict[str, str]) -> str:
    """Unshares the namespaces; returns the identity strategy for the children."""
    mode = header["isolation"]
    root = os.geteuid() == 0
    identity = privileges.IDENTITY_UID if root else privileges.IDENTITY_NONE
    if mode == "off":
        layers["namespaces"] = "off (isolation='off')"
        return identity
    flags = (
        linux.CLONE_NEWNS
        | linux.CLONE_NEWPID
        | linux.CLONE_NEWNET
        | linux.CLONE_NEWIPC
        | linux.CLONE_NEWUTS
    )
    if not root:
        flags |= linux.CLONE_NEWUSER
    try:
        linux.unshare(flags)
    except OSError as err:
        if mode == "required":
            raise
        layers["namespaces"] = f"off (unshare refused: {err.strerror})"
        return identity
    if root:
        layers["user namespace"] = "not needed (root: separate user ids instead)"
    else:
        linux.write_id_maps(NOBODY, os.geteuid(), NOBODY, os.getegid())
        layers["user namespace"] = ON
        identity = privileges.IDENTITY_CAPS
    for name in ("mount", "pid", "network", "ipc", "uts"):
        layers[f"{name} namespace"] = ON
    return identity


def _init(header: dict[str, Any], program: str, layers: dict[str, str], identity: str) -> int:
    """Body of the init process; returns its exit status."""
    report_fd = header["report_fd"]
    limits = header["limits"]
    namespaces = "pid namespace" in layers
    uids = header.get("uids") or [None, None]
    worker_owner = (uids[0], uids[0]) if identity == privileges.IDENTITY_UID else None
    if namespaces:
        try:
            linux.sethostname("sandbox")
            notes = filesystem.build_root(header["root"], limits["disk_bytes"], worker_owner)
            layers["filesystem"] = "on (chroot: read-only system, private /tmp)"
            if notes:
                layers["filesystem"] += "; " + "; ".join(notes)
        except OSError as err:
            if header["isolation"] == "required":
                raise
            layers["filesystem"] = f"off ({err})"
            os.chdir(header["root"])
    else:
        layers["filesystem"] = "off (no mount namespace)"
        os.chdir(header["root"])
    if identity == privileges.IDENTITY_UID:
        layers["user ids"] = "on (worker and harness each run as their own unused user id)"
    elif identity == privileges.IDENTITY_CAPS:
        layers["user ids"] = "on (no capabilities in the user namespace)"
    else:
        layers["user ids"] = "off (not root and no user namespace: the host user's id)"
    if header["isolation"] == "required" and not namespaces:
        raise OSError("isolation='required' but the namespaces are unavailable")
    path_fds: list[int] = []
    if identity == privileges.IDENTITY_UID and not layers["filesystem"].startswith("on"):
        path_fds = _reach_library()

    requests_r, requests_w = os.pipe()
    responses_r, responses_w = os.pipe()
    worker_pid = _fork_worker(
        program, requests_r, responses_w, limits, identity, uids[0], namespaces, path_fds
    )
    os.close(requests_r)
    os.close(responses_w)
    del program
    tests = json.loads(wire.read_frame(0, MAX_SOURCE_BYTES))
    os.close(0)
    harness_pid = _fork_harness(
        tests, requests_w, responses_r, report_fd, limits, identity, uids[1], path_fds
    )
    os.close(requests_w)
    os.close(responses_r)
    del tests
    statuses = _reap(worker_pid, harness_pid, namespaces, identity)
    wire.send(report_fd, {"kind": "init", "layers": layers, **statuses})
    return 0


def _reach_library() -> list[int]:
    """Keeps the standard library importable after a user id switch without a new root.

    Without the chroot the interpreter stays where it is installed, possibly under a
    directory only root may enter (``/root/.pyenv``). Descriptors opened now, as root, on the
    ``sys.path`` directories lead there through ``/proc/self/fd/N`` whatever the directories
    above them allow; ``sys.path`` is pointed at those links.
    """
    fds, entries = [], []
    for entry in sys.path:
        if os.path.isdir(entry):
            fd = os.open(entry, os.O_PATH | os.O_DIRECTORY)
            fds.append(fd)
            entries.append(f"/proc/self/fd/{fd}")
    sys.path[:] = entries
    sys.path_importer_cache.clear()
    return fds


def _worker_limits(limits: dict[str, Any], identity: str) -> dict[int, int]:
    rlimits = {
        resource.RLIMIT_CPU: max(1, int(-(-limits["cpu_seconds"] // 1))),
        resource.RLIMIT_AS: limits["memory_bytes"],
        resource.RLIMIT_FSIZE: limits["max_file_bytes"],
        resource.RLIMIT_NOFILE: limits["max_open_files"],
        resource.RLIMIT_CORE: 0,
    }
    if identity != privileges.IDENTITY_NONE:  # otherwise it would count the host user's processes
        rlimits[resource.RLIMIT_NPROC] = limits["max_processes"]
    return rlimits


def _fork_worker(
    program: str,
    requests_r: int,
    responses_w: int,
    limits: dict[str, Any],
    identity: str,
    uid: int | None,
    namespaces: bool,
    path_fds: list[int],
) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        privileges.isolate_descriptors(keep=(1, 2, requests_r, responses_w, *path_fds))
        os.chdir("/tmp" if namespaces else ".")
        privileges.confine(identity, uid, uid, _worker_limits(limits, identity), dumpable=True)
        layers = {"rlimits": ON, "no_new_privs": ON}
        try:
            shared_uid = identity != privileges.IDENTITY_UID
            layers["seccomp"] = seccomp.install(namespaces, shared_uid, os.getpid())
        except OSError as err:
            layers["seccomp"] = f"off ({err})"
    except BaseException:  # never run the program unconfined
        traceback.print_exc()
        os._exit(SETUP_FAILED)
    try:
        worker.serve(program, requests_r, responses_w, layers)
    finally:  # whatever the program did, never return into init's code
        os._exit(1)


def _fork_harness(
    tests: dict[str, Any],
    requests_w: int,
    responses_r: int,
    report_fd: int,
    limits: dict[str, Any],
    identity: str,
    uid: int | None,
    path_fds: list[int],
) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = SETUP_FAILED
    try:
        os.setsid()
        linux.prctl(linux.PR_SET_DUMPABLE, 0)
        privileges.isolate_descriptors(keep=(requests_w, responses_r, report_fd, *path_fds))
        os.chdir("/")
        rlimits = {
            resource.RLIMIT_CPU: max(1, int(-(-limits["wall_seconds"] // 1)) + 1),
            resource.RLIMIT_AS: max(1 << 30, 2 * limits["memory_bytes"]),
            resource.RLIMIT_FSIZE: 0,
            resource.RLIMIT_CORE: 0,
        }
        privileges.confine(identity, uid, uid, rlimits, dumpable=False)
        code = 0
        verdict = harness.run(
            tests["code"], tests["expose"], requests_w, responses_r, tests["setup"]
        )
        wire.send(report_fd, verdict)
    except BaseException as err:
        _report_error(report_fd, "harness", err)
        code = code or 1
    os._exit(code)


def _reap(worker_pid: int, harness_pid: int, namespaces: bool, identity: str) -> dict[str, Any]:
    """Waits for the harness, then ends the worker; returns how both ended."""
    ended: dict[int, dict[str, Any]] = {}
    while harness_pid not in ended:
        pid, status, usage = os.wait3(0)  # as pid 1 this also reaps the program's orphans
        if pid in (worker_pid, harness_pid):
            ended[pid] = _status(status, usage)
    deadline = time.monotonic() + _WORKER_GRACE_S
    while worker_pid not in ended and time.monotonic() < deadline:
        pid, status, usage = os.wait4(worker_pid, os.WNOHANG)
        if pid:
            ended[pid] = _status(status, usage)
        else:
            time.sleep(0.002)
    if worker_pid not in ended:
        _kill_group(worker_pid)
        _, status, usage = os.wait4(worker_pid, 0)
        ended[worker_pid] = {**_status(status, usage), "killed_by_init": True}
    if not namespaces:
        _kill_group(worker_pid)  # without a pid namespace, at least the worker's session
    return {"worker": ended[worker_pid], "harness": ended[harness_pid]}


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)


def _status(status: int, usage: resource.struct_rusage) -> dict[str, Any]:
    cpu = round(usage.ru_utime + usage.ru_stime, 3)
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status), "cpu_s": cpu}
    return {"exit": os.waitstatus_to_exitcode(status), "cpu_s": cpu}


def _report_error(report_fd: int, where: str, err: BaseException) -> None:
    if report_fd < 0:
        traceback.print_exc()
        return
    text = "".join(traceback.format_exception_only(type(err), err)).strip()
    with contextlib.suppress(OSError):
        wire.send(report_fd, {"kind": "error", "where": where, "message": text[:2000]})
