"""How the host starts a launcher: forked by a fork server, or as a fresh interpreter.

The fork server (:mod:`.inside.zygote`) is started lazily, once per host process (again in
a forked child of the host), and used by every thread under a lock; each launch costs a
fork instead of an interpreter start-up. Where it cannot work (no pidfds, or it fails to
start) launchers are started directly with ``subprocess``. Either way the launcher runs
``python -I -S`` code from :mod:`.inside`, with an almost empty environment, in its own
session.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

from bgpo_lightning.sandbox.inside.zygote import REPORT_FD

_SANDBOX_DIR = os.path.dirname(os.path.abspath(__file__))
_PREFIX = f"import sys; sys.path.insert(0, {_SANDBOX_DIR!r}); "
ENV = {"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"}


class Launched:
    """A started launcher: something to kill at the wall-clock limit."""

    def kill(self) -> None:
        """Kills the launcher (its init process and namespace follow)."""
        raise NotImplementedError


class _Forked(Launched):
    def __init__(self, pidfd: int | None) -> None:
        self._pidfd = pidfd

    def kill(self) -> None:
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is None:
            return
        with contextlib.suppress(OSError):  # already exited
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        os.close(pidfd)


class _Spawned(Launched):
    def __init__(self, proc: subprocess.Popen) -> None:
        self._proc = proc

    def kill(self) -> None:
        with contextlib.suppress(OSError):  # launcher and init share the process group
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()


class _Zygote:
    def __init__(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        code = (
            _PREFIX + f"from inside import zygote; sys.path.pop(0); zygote.serve({child.fileno()})"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", code],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(child.fileno(),),
            env=ENV,
            cwd="/",
            start_new_session=True,
        )
        child.close()
        self.sock = parent
        self.pid = os.getpid()

    def launch(self, fds: tuple[int, int, int, int]) -> Launched:
        socket.send_fds(self.sock, [b"L"], list(fds))
        message, pidfds, _, _ = socket.recv_fds(self.sock, 4, 1)
        if len(message) != 4 or struct.unpack("i", message)[0] < 0:
            raise OSError("the fork server refused or died")
        return _Forked(pidfds[0] if pidfds else None)

    def close(self) -> None:
        """Ends the server: it exits when its socket closes."""
        self.sock.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_lock = threading.Lock()
_zygote: _Zygote | None = None
_zygote_failed = not (hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal"))


def launch(stdin: int, stdout: int, stderr: int, report: int) -> tuple[Launched, int]:
    """Starts a launcher on the given child ends of the run's pipes.

    Returns:
        The launched process and the descriptor number of the report pipe inside it.

    Raises:
        OSError: If no launcher could be started.
    """
    global _zygote, _zygote_failed
    with _lock:
        for _attempt in range(2):
            if _zygote_failed:
                break
            try:
                if _zygote is None or _zygote.pid != os.getpid():
                    _discard()
                    _zygote = _Zygote()  # a forked host needs its own: the socket is shared
                return _zygote.launch((stdin, stdout, stderr, report)), REPORT_FD
            except OSError:
                _discard()
        else:
            _zygote_failed = True
    return _spawn(stdin, stdout, stderr, report), report


def _discard() -> None:
    global _zygote
    if _zygote is not None:
        if _zygote.pid == os.getpid():
            _zygote.close()
        else:  # inherited through fork: drop this process's copy of the parent's socket
            _zygote.sock.close()
    _zygote = None


@atexit.register
def _shutdown() -> None:
    with _lock:
        _discard()


def _spawn(stdin: int, stdout: int, stderr: int, report: int) -> Launched:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-I",
            "-S",
            "-c",
            _PREFIX + "from inside import boot; sys.path.pop(0); boot.main()",
        ],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        pass_fds=(report,),
        env=ENV,
        cwd="/",
        start_new_session=True,
    )
    return _Spawned(proc)
