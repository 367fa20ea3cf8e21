"""The grading workers of this process, shared by all threads, plus one started spare.

A caller takes workers, grades on them (:mod:`math_batch`), and gives them back, or discards
one it had to kill. After each take and each discard a spare is left starting if no worker is
idle, so that a grading after a kill does not wait for a new worker's imports.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading

from bgpo_lightning.tasks.math_worker import GradingWorker

# Failed starts in a row after which this process grades in process.
_MAX_START_FAILURES = 3

_log = logging.getLogger(__name__)


class WorkerPool:
    """Idle workers; thread-safe. Each taken worker serves one caller until given back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: collections.deque[GradingWorker] = collections.deque()
        self._all: set[GradingWorker] = set()
        self._start_failures = 0

    @property
    def broken(self) -> bool:
        """Whether workers failed to start too often to keep trying."""
        return self._start_failures >= _MAX_START_FAILURES

    def take(self) -> GradingWorker | None:
        """An idle worker or a new one; ``None`` if workers do not start.

        The most recently used ready worker first: its memory is in the CPU caches and its
        cache holds the references of the last calls (a prompt's completions come together).
        """
        with self._lock:
            if self.broken:
                return None
            ready = [w for w in self._idle if w.check_ready()]
            worker = ready[-1] if ready else (self._idle[0] if self._idle else None)
            if worker is not None:
                self._idle.remove(worker)
            else:
                worker = self._start()
            if worker is not None:
                self._keep_spare()
            return worker

    def give_back(self, worker: GradingWorker) -> None:
        """Returns a worker that answered: it grades again, next."""
        with self._lock:
            if worker.ready:
                self._start_failures = 0
            self._idle.append(worker)

    def discard(self, worker: GradingWorker) -> None:
        """Kills a worker (stuck past the limit, or dead) and leaves a spare starting."""
        worker.kill()
        with self._lock:
            self._all.discard(worker)
            self._keep_spare()

    def start_failed(self, worker: GradingWorker) -> None:
        """Kills a worker that died or hung while starting; counts towards :attr:`broken`."""
        worker.kill()
        with self._lock:
            self._all.discard(worker)
            self._start_failures += 1
            if self.broken:
                _log.error("math grading workers do not start; grading in process")

    def worker_pids(self) -> set[int]:
        """Process ids of the live workers, busy or idle."""
        with self._lock:
            return {worker.pid for worker in self._all}

    def close(self) -> None:
        """Kills every worker (at exit)."""
        with self._lock:
            workers, self._all = list(self._all), set()
            self._idle.clear()
        for worker in workers:
            worker.kill()

    def forget(self) -> None:
        """In a forked child: drops the parent's workers without touching them."""
        for worker in self._all:
            worker.close_pipes()
        self._all, self._idle = set(), collections.deque()

    def _keep_spare(self) -> None:
        if not self._idle and not self.broken:
            spare = self._start()  # imports while the caller grades
            if spare is not None:
                self._idle.append(spare)

    def _start(self) -> GradingWorker | None:
        try:
            worker = GradingWorker()
        except OSError:
            _log.exception("cannot start a math grading worker")
            self._start_failures += 1
            return None
        self._all.add(worker)
        return worker


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def pool() -> WorkerPool:
    """This process's pool, created on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = WorkerPool()
        return _pool


def _after_fork_in_child() -> None:
    # The parent's workers answer the parent: a forked child starts its own.
    global _pool, _pool_lock
    _pool_lock = threading.Lock()
    if _pool is not None:
        _pool.forget()
    _pool = None


@atexit.register
def _shutdown() -> None:
    if _pool is not None:
        _pool.close()


os.register_at_fork(after_in_child=_after_fork_in_child)
