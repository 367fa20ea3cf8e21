"""Runs one untrusted program against trusted tests in a fresh sandbox (host side).

Per run the host makes a fresh temporary directory (the mount point of the sandbox's root;
removed afterwards), starts a launcher of :mod:`.inside.boot` (``python -I -S`` code: isolated
mode, no site-packages, an almost empty environment, its own session; see :mod:`.launch`)
and feeds it three frames on standard input: settings, program, tests (with their trusted
setup code). It then drains the program's standard output and error (keeping at most
``max_output_bytes`` of each, so a chatty program can never block on a full pipe, and ending
the run if it writes more) and the report pipe, until everything closes or the wall-clock
limit passes, when it kills the launcher: the init process dies with it, and its death takes
down the whole pid namespace.

The verdict is the harness's report message, which only the harness can write (see
:mod:`.inside.harness`); exit codes and output never decide a pass.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Sequence
from typing import Any

from bgpo_lightning.sandbox import launch
from bgpo_lightning.sandbox.inside import boot, wire
from bgpo_lightning.sandbox.limits import SandboxLimits
from bgpo_lightning.sandbox.result import SandboxResult, Status

ISOLATION_MODES = ("auto", "required", "off")

_MAX_REPORT_BYTES = 1 << 20
_CHUNK = 1 << 16
_GRACE_S = 0.2  # for output after the report closed; only stray processes take that long
_UID_RANGE = (1 << 27, 1 << 30)  # far above any real account


def check_isolation(isolation: str) -> str:
    """Validates an isolation mode name."""
    if isolation not in ISOLATION_MODES:
        raise ValueError(f"isolation must be one of {ISOLATION_MODES}, got {isolation!r}")
    return isolation


def run_program(
    program: str,
    tests: str = "",
    limits: SandboxLimits | None = None,
    isolation: str = "auto",
    expose: Sequence[str] = (),
    setup: str = "",
) -> SandboxResult:
    """Runs ``program`` in a sandbox, then ``tests`` against it; never raises for the program.

    Args:
        program: Untrusted Python source, run as module ``__sandbox__``.
        tests: Trusted Python source, run in a separate harness process; names it uses but
            does not define call into the program (e.g. ``assert f(2) == 4``). It passes if
            it runs to its end without raising. Empty tests pass as soon as the program ran
            to its end without raising (which a program can fake, e.g. by calling
            ``os._exit`` from a thread: meaningful checks belong in ``tests``).
        limits: Resource limits; defaults to :class:`SandboxLimits` ``()``.
        isolation: ``"auto"`` (every available layer, degrading where the machine refuses
            one), ``"required"`` (status ``error`` unless the namespaces are available), or
            ``"off"`` (no namespaces: only user ids, rlimits and seccomp; for comparisons).
        expose: Program names the tests may call even where they shadow a built-in (the
            function under test, e.g. MBPP's ``sum``); other built-in names in the tests
            keep their built-in meaning.
        setup: Trusted Python source run in the harness before ``tests``, in the same
            namespace: helpers the tests call (HumanEval's ``encode_cyclic``), objects they
            pass to the program (MBPP's trees). Every name the setup or the tests bind keeps
            the trusted meaning even where the program defines it too; the program gets
            copies of the objects, never the objects.

    Returns:
        The result; see :class:`SandboxResult`.
    """
    limits = limits or SandboxLimits()
    check_isolation(isolation)
    start = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="bgpo-sandbox-")
    uids = _pick_uids() if os.geteuid() == 0 else None
    result = None
    try:
        if uids is not None and isolation == "off":
            os.chown(workdir, uids[0], uids[0])
        spec = {"code": tests, "setup": setup, "expose": list(expose)}
        result = _Run(program, spec, limits, isolation, workdir, uids, start).execute()
        if isolation == "auto" and result.isolation:
            _warn_if_degraded(result.isolation)
        return result
    finally:
        try:
            stray = result is None or result.isolation.get("pid namespace") != "on"
            if uids is not None and stray:
                _kill_users(uids)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


_warned = False


def _warn_if_degraded(layers: dict[str, str]) -> None:
    global _warned
    if _warned or layers.get("pid namespace") == "on":
        return
    _warned = True
    off = "; ".join(f"{k}: {v}" for k, v in layers.items() if not v.startswith("on"))
    warnings.warn(
        "sandbox without namespaces on this machine: untrusted programs can read the host's "
        f"world-readable files and reach the network ({off})",
        RuntimeWarning,
        stacklevel=3,
    )


def _pick_uids() -> tuple[int, int]:
    low, high = _UID_RANGE
    worker = low + secrets.randbelow(high - low)
    return worker, worker + 1


def _kill_users(uids: tuple[int, int]) -> None:
    """Without a pid namespace, ends any process the run's user ids left behind.

    A process running as the run's fresh user id and calling ``kill(-1, SIGKILL)`` reaches
    exactly the processes of that user id (the system's ``kill`` program, since the
    interpreter may not be readable by that user). With namespaces there are none left (cheap check
    first: this is only needed when a process survived init's death).
    """
    kill = shutil.which("kill", path="/usr/bin:/bin")
    for uid in uids:
        if kill is None or not _has_processes(uid):
            continue
        subprocess.run(
            [kill, "-KILL", "-1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=uid,
            group=uid,
            extra_groups=[],
            env=launch.ENV,
            cwd="/",
            check=False,
        )


def _has_processes(uid: int) -> bool:
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    return True
            except OSError:
                continue
    return False


class _Run:
    """One launcher process and the draining of its pipes."""

    def __init__(
        self,
        program: str,
        tests: dict[str, Any],
        limits: SandboxLimits,
        isolation: str,
        workdir: str,
        uids: tuple[int, int] | None,
        start: float,
    ) -> None:
        self.program = program
        self.tests = tests
        self.limits = limits
        self.isolation = isolation
        self.workdir = workdir
        self.uids = uids
        self.start = start
        self.output = {"stdout": bytearray(), "stderr": bytearray(), "report": bytearray()}
        self.timed_out = False
        self.output_exceeded = ""

    def execute(self) -> SandboxResult:
        pipes = {name: os.pipe() for name in ("stdin", "stdout", "stderr", "report")}
        child_ends = (
            pipes["stdin"][0],
            pipes["stdout"][1],
            pipes["stderr"][1],
            pipes["report"][1],
        )
        ours = {
            "stdin": pipes["stdin"][1],
            "stdout": pipes["stdout"][0],
            "stderr": pipes["stderr"][0],
            "report": pipes["report"][0],
        }
        try:
            launched, report_fd = launch.launch(*child_ends)
        except OSError as err:
            for fd in (*child_ends, *ours.values()):
                os.close(fd)
            return self._result(Status.ERROR, None, f"could not start the sandbox: {err}", {})
        for fd in child_ends:
            os.close(fd)
        header = {
            "isolation": self.isolation,
            "limits": self.limits.as_dict(),
            "uids": list(self.uids) if self.uids else None,
            "root": self.workdir,
            "report_fd": report_fd,
        }
        payload = b"".join(
            wire.frame(part)
            for part in (
                json.dumps(header).encode(),
                self.program.encode("utf-8", "surrogatepass"),
                json.dumps(self.tests).encode(),
            )
        )
        try:
            self._drain(ours, payload)
        finally:
            launched.kill()
            for fd in ours.values():  # never twice: a closed number may be reused at once
                os.close(fd)
        return self._interpret()

    def _drain(self, fds: dict[str, int], payload: bytes) -> None:
        deadline = self.start + self.limits.wall_seconds
        sel = selectors.DefaultSelector()
        caps = {"stdout": self.limits.max_output_bytes, "stderr": self.limits.max_output_bytes}
        caps["report"] = _MAX_REPORT_BYTES
        os.set_blocking(fds["stdin"], False)
        for name, fd in fds.items():
            sel.register(
                fd, selectors.EVENT_WRITE if name == "stdin" else selectors.EVENT_READ, name
            )
        view = memoryview(payload)
        try:
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    self.timed_out = not self._reported()
                    return
                for key, _ in sel.select(left):
                    name = key.data
                    if name == "stdin":
                        try:
                            view = view[os.write(key.fd, view[:_CHUNK]) :]
                        except (BrokenPipeError, BlockingIOError) as err:
                            if isinstance(err, BlockingIOError):
                                continue
                            view = view[len(view) :]
                        if not view:
                            sel.unregister(key.fd)
                            os.close(fds.pop("stdin"))  # the launcher sees end of input
                        continue
                    data = os.read(key.fd, _CHUNK)
                    if not data:
                        sel.unregister(key.fd)
                        if name == "report":  # init and harness are done: a short grace for
                            deadline = min(deadline, time.monotonic() + _GRACE_S)  # output
                        continue
                    buffer = self.output[name]
                    room = caps[name] - len(buffer)
                    buffer += data[:room]
                    if len(data) > room:
                        self.output_exceeded = name
                        return
        finally:
            sel.close()

    def _reported(self) -> bool:
        """Whether the init process already sent its final message."""
        return any(m.get("kind") == "init" for m in _messages(bytes(self.output["report"])))

    def _interpret(self) -> SandboxResult:
        messages = _messages(bytes(self.output["report"]))
        verdict = next((m for m in messages if m.get("kind") == "verdict"), None)
        init = next((m for m in messages if m.get("kind") == "init"), None)
        errors = [m for m in messages if m.get("kind") == "error"]
        layers = dict(init.get("layers", {})) if init else {}
        if verdict:
            layers.update(verdict.get("worker_layers") or {})
        worker = (init or {}).get("worker") or {}
        exit_code = worker.get("exit", -worker["signal"] if "signal" in worker else None)
        if self.timed_out:
            return self._result(Status.TIMEOUT, exit_code, "wall-clock limit", layers)
        if self.output_exceeded:
            detail = f"more than {self.limits.max_output_bytes} bytes on {self.output_exceeded}"
            return self._result(Status.OUTPUT_LIMIT, exit_code, detail, layers)
        if errors:
            detail = "; ".join(f"{e.get('where')}: {e.get('message')}" for e in errors)
            return self._result(Status.ERROR, exit_code, detail, layers)
        if verdict is None:
            harness = (init or {}).get("harness")
            if harness and harness.get("signal") == signal.SIGXCPU:
                return self._result(Status.TIMEOUT, exit_code, "harness CPU limit", layers)
            if worker.get("exit") == boot.SETUP_FAILED:
                return self._result(
                    Status.ERROR, exit_code, "could not confine the program", layers
                )
            if harness and "signal" in harness:  # only the program could have sent it
                detail = f"the harness was killed by signal {harness['signal']}"
                return self._result(Status.FAILED, exit_code, detail, layers)
            return self._result(Status.ERROR, exit_code, "the sandbox gave no verdict", layers)
        if verdict.get("passed") is True:
            return self._result(Status.PASSED, exit_code, "", layers)
        failure = verdict.get("failure") or {}
        detail = _describe_failure(failure)
        if failure.get("stage") == "compile":  # the trusted tests are broken, not the program
            return self._result(Status.ERROR, exit_code, detail, layers)
        if self._cpu_limited(worker):
            return self._result(Status.TIMEOUT, exit_code, f"CPU limit ({detail})", layers)
        if failure.get("type") == "MemoryError":
            return self._result(Status.MEMORY, exit_code, detail, layers)
        if worker.get("exit") == boot.SETUP_FAILED:
            return self._result(Status.ERROR, exit_code, "could not confine the program", layers)
        return self._result(Status.FAILED, exit_code, detail, layers)

    def _cpu_limited(self, worker: dict[str, Any]) -> bool:
        """Whether the program's process was ended by its CPU limit (not by itself or init)."""
        if worker.get("killed_by_init"):
            return False
        limit = math.ceil(self.limits.cpu_seconds)
        if worker.get("signal") == signal.SIGXCPU:
            return True
        return worker.get("signal") == signal.SIGKILL and worker.get("cpu_s", 0) >= limit - 0.05

    def _result(
        self, status: Status, exit_code: int | None, detail: str, layers: dict[str, str]
    ) -> SandboxResult:
        return SandboxResult(
            status=status,
            exit_code=exit_code,
            stdout=bytes(self.output["stdout"]).decode("utf-8", "replace"),
            stderr=bytes(self.output["stderr"]).decode("utf-8", "replace"),
            duration_s=time.monotonic() - self.start,
            detail=detail,
            truncated=bool(self.output_exceeded),
            isolation=layers,
        )


def _describe_failure(failure: dict[str, Any]) -> str:
    where = failure.get("stage", "?")
    if failure.get("line"):
        where += f" line {failure['line']}"
    text = f"{where}: {failure.get('type', '?')}"
    if failure.get("message"):
        text += f": {failure['message']}"
    return text


def _messages(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for line in raw.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            out.append(message)
    return out
