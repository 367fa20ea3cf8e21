"""A grading worker: a fresh Python process that grades the requests it is sent, in order.

Protocol: the worker writes ``ready`` once its imports are done, then answers each request line
(a JSON object of :func:`~bgpo_lightning.tasks.math_grader.is_equivalent_in_process` arguments)
with ``1`` or ``0``. It exits when its stdin closes.

The worker is a fresh interpreter (not a fork of the caller, which may hold threads, CUDA and
gigabytes), started with stub ``bgpo_lightning`` packages so that it imports only the grading
modules (``bgpo_lightning.tasks`` itself imports Lightning): it is ready in about half a second.
It ignores Ctrl-C (the caller decides when it ends), and SIGALRM ends it should a request run
far past its limit with no caller left to kill it. It stays in the caller's session: a session
of its own is a scheduling group of its own, where under load each thread start took ~3 ms.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys

_TASKS_DIR = os.path.dirname(os.path.abspath(__file__))
_PACKAGE_DIR = os.path.dirname(_TASKS_DIR)
_BOOT = (
    "import signal, sys, types\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "signal.signal(signal.SIGALRM, signal.SIG_DFL)\n"
    f"sys.path.insert(0, {os.path.dirname(_PACKAGE_DIR)!r})\n"
    f"for name, path in (('bgpo_lightning', {_PACKAGE_DIR!r}), "
    f"('bgpo_lightning.tasks', {_TASKS_DIR!r})):\n"
    "    package = types.ModuleType(name)\n"
    "    package.__path__ = [path]\n"
    "    sys.modules[name] = package\n"
    "from bgpo_lightning.tasks.math_worker import serve\n"
    "serve()\n"
)
READY = b"ready"
# An orphaned worker (its caller killed) ends itself this long after a request's limit.
_SELF_KILL_AFTER_S = 10.0


class WorkerGone(Exception):
    """The worker process exited: before a request (``answering`` False) or while answering."""

    def __init__(self, answering: bool) -> None:
        super().__init__("the grading worker exited" + (" while answering" if answering else ""))
        self.answering = answering


class GradingWorker:
    """The caller's handle on one worker process; used by one thread at a time.

    Non-blocking: :meth:`send` queues a request, and when :meth:`fileno` is readable
    :meth:`read` returns the answers written so far, in the order of the requests.
    """

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin, self._stdout = self._proc.stdin, self._proc.stdout
        self._partial = b""
        self.ready = False  # True once the worker said its imports are done

    @property
    def pid(self) -> int:
        return self._proc.pid

    def fileno(self) -> int:
        """The descriptor to poll for answers (and for the ready line)."""
        return self._stdout.fileno()

    def send(self, request: dict) -> None:
        """Queues a request; the pipe holds far more than the few requests queued at once.

        Raises:
            WorkerGone: If the worker has exited (``answering`` False).
        """
        line = json.dumps(request).encode() + b"\n"  # ASCII: lone surrogates are escaped
        try:
            while line:
                line = line[os.write(self._stdin.fileno(), line) :]
        except OSError as error:  # BrokenPipeError: it died while idle
            raise WorkerGone(answering=False) from error

    def read(self) -> list[bytes]:
        """Answers written so far (``b"1"`` or ``b"0"``); call when :meth:`fileno` is readable.

        Raises:
            WorkerGone: If the worker has exited (``answering`` True once it was ready).
        """
        chunk = os.read(self.fileno(), 65536)
        if not chunk:
            raise WorkerGone(answering=self.ready)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        if not self.ready and lines and lines[0] == READY:
            self.ready = True
            lines = lines[1:]
        return lines

    def check_ready(self) -> bool:
        """Whether the worker is ready, without waiting."""
        if not self.ready:
            poller = select.poll()  # poll, not select: descriptors may exceed FD_SETSIZE
            poller.register(self.fileno(), select.POLLIN)
            with contextlib.suppress(WorkerGone):
                if poller.poll(0):
                    self.read()
        return self.ready

    def kill(self) -> None:
        """Kills the worker at once and reaps it."""
        with contextlib.suppress(OSError):
            self._proc.kill()
        self._proc.wait()
        self.close_pipes()

    def close_pipes(self) -> None:
        """Closes this process's ends of the pipes (a forked copy drops its inherited ones)."""
        for pipe in (self._stdin, self._stdout):
            with contextlib.suppress(OSError):
                pipe.close()


def serve() -> None:
    """The worker's main loop (in the worker process)."""
    from bgpo_lightning.tasks.math_grader import is_equivalent_in_process

    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, never into the answers
    answers.write(READY + b"\n")
    answers.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        limit = float(request.get("time_limit_s", 0))
        if limit > 0:  # SIGALRM's default action ends the worker even where no caller is left
            signal.setitimer(signal.ITIMER_REAL, limit + _SELF_KILL_AFTER_S)
        verdict = is_equivalent_in_process(**request)
        signal.setitimer(signal.ITIMER_REAL, 0)
        answers.write(b"1\n" if verdict else b"0\n")
        answers.flush()
