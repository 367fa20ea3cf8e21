"""One watchdog thread per process for all of :func:`~math_limits.time_limit`'s deadlines.

A thread started per grading (``threading.Timer``) costs its start, and on a loaded machine
the start waits for the new thread to be scheduled: a millisecond or more, as much as grading
a GSM8K answer. This thread is started once, sleeps until the earliest deadline, and is only
woken when a deadline earlier than that one is armed.
"""

from __future__ import annotations

import ctypes
import itertools
import math
import os
import threading
import time


def set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    """Raises ``exc`` in a thread at its next bytecode; ``None`` clears one not yet raised."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


class Watchdog:
    """Raises an exception in a thread whose deadline passed, unless disarmed before."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, tuple[float, int, type[BaseException]]] = {}
        self._fired: set[int] = set()
        self._tokens = itertools.count()
        self._wake_at = math.inf  # when the thread wakes next (inf: when notified)
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, exc: type[BaseException]) -> int:
        """Raises ``exc`` in the calling thread in ``seconds``; returns a token to disarm."""
        deadline = time.monotonic() + seconds
        with self._cond:
            token = next(self._tokens)
            self._armed[token] = (deadline, threading.get_ident(), exc)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="time-limit", daemon=True)
                self._thread.start()
            if deadline < self._wake_at:
                self._cond.notify()
        return token

    def disarm(self, token: int) -> bool:
        """Cancels a deadline; True if it had fired (its exception may not be raised yet)."""
        with self._cond:
            self._armed.pop(token, None)
            fired = token in self._fired
            self._fired.discard(token)
            return fired

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for token, (deadline, thread_id, exc) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[token]
                        self._fired.add(token)
                        set_async_exc(thread_id, exc)
                self._wake_at = min((d for d, _, _ in self._armed.values()), default=math.inf)
                self._cond.wait(None if self._wake_at == math.inf else self._wake_at - now)


_watchdog = Watchdog()


def watchdog() -> Watchdog:
    """This process's watchdog."""
    return _watchdog


def _after_fork_in_child() -> None:
    # Its thread does not exist in a forked child, and its lock may be held there.
    global _watchdog
    _watchdog = Watchdog()


os.register_at_fork(after_in_child=_after_fork_in_child)
