"""Grades a batch of requests on worker processes, each answer bounded by the time limit.

The watchdog of :mod:`math_limits` cannot interrupt one long C call (``3**33550336``), so the
hard bound is the worker: the caller waits on the pipes with a deadline, whatever sympy does,
and kills a worker that is still on one answer ``KILL_MARGIN_S`` after the limit; that answer
is wrong and the worker's other requests go to the other workers or a replacement.

Each worker has up to ``WINDOW`` requests queued, so it never waits for the caller between
answers (on a loaded machine each wait for the other process costs a scheduling delay), and
several workers grade one batch in parallel.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import select
import time
from collections.abc import Callable

from bgpo_lightning.tasks.math_pool import WorkerPool
from bgpo_lightning.tasks.math_worker import GradingWorker, WorkerGone

# After the limit the worker's own watchdog answers within milliseconds; past this margin it
# is stuck in C and is killed.
KILL_MARGIN_S = 0.5
# A fresh worker imports sympy and math-verify in ~0.5 s; this much means it cannot start.
STARTUP_TIMEOUT_S = 60.0
# Requests queued per worker (a few kilobytes each: the pipe never fills).
WINDOW = 4


@dataclasses.dataclass
class _Lane:
    """One worker and the requests it has, in order; the first is the one it grades."""

    worker: GradingWorker
    started: float  # when the worker started (its start-up deadline counts from there)
    queued: collections.deque[int] = dataclasses.field(default_factory=collections.deque)
    head_since: float = 0.0  # when the first queued request became the one it grades


class _Batch:
    def __init__(self, pool: WorkerPool, requests: list[dict], limit_s: float) -> None:
        self.pool, self.requests = pool, requests
        self.limit_s = limit_s + KILL_MARGIN_S if limit_s > 0 else math.inf
        self.verdicts: list[bool | None] = [None] * len(requests)
        self.pending = collections.deque(range(len(requests)))
        self.lanes: dict[int, _Lane] = {}
        self.poller = select.poll()  # poll, not select: descriptors may exceed FD_SETSIZE

    def add_lane(self) -> bool:
        worker = self.pool.take()
        if worker is None:
            return False
        self.lanes[worker.fileno()] = _Lane(worker, time.monotonic())
        self.poller.register(worker.fileno(), select.POLLIN)
        return True

    def drop_lane(self, lane: _Lane, end: Callable[[GradingWorker], None]) -> None:
        """Ends a lane's worker; its queued requests go back to the front of the pending ones.

        A killed worker's lane is replaced (by the pool's spare) while requests are left.
        """
        self.poller.unregister(lane.worker.fileno())
        del self.lanes[lane.worker.fileno()]
        self.pending.extendleft(reversed(lane.queued))
        end(lane.worker)
        if end == self.pool.discard and self.pending:
            self.add_lane()

    def feed(self) -> None:
        for lane in list(self.lanes.values()):
            while lane.worker.ready and self.pending and len(lane.queued) < WINDOW:
                index = self.pending.popleft()
                try:
                    lane.worker.send(self.requests[index])
                except WorkerGone:  # it died while idle: not the request's fault
                    self.pending.appendleft(index)
                    self.drop_lane(lane, self.pool.discard)
                    break
                if not lane.queued:
                    lane.head_since = time.monotonic()
                lane.queued.append(index)

    def next_deadline(self) -> float | None:
        deadlines = [
            lane.head_since + self.limit_s
            if lane.worker.ready
            else lane.started + STARTUP_TIMEOUT_S
            for lane in self.lanes.values()
            if lane.queued or not lane.worker.ready
        ]
        return min(deadlines, default=None)

    def collect(self, lane: _Lane) -> None:
        try:
            answers = lane.worker.read()
        except WorkerGone:
            if not lane.worker.ready:
                self.drop_lane(lane, self.pool.start_failed)
                return
            if lane.queued:  # it crashed on this answer: wrong
                self.verdicts[lane.queued.popleft()] = False
            self.drop_lane(lane, self.pool.discard)
            return
        for answer in answers:
            self.verdicts[lane.queued.popleft()] = answer == b"1"
            lane.head_since = time.monotonic()

    def expire(self) -> None:
        now = time.monotonic()
        for lane in list(self.lanes.values()):
            if lane.worker.ready and lane.queued and now >= lane.head_since + self.limit_s:
                self.verdicts[lane.queued.popleft()] = False  # stuck past the limit
                self.drop_lane(lane, self.pool.discard)
            elif not lane.worker.ready and now >= lane.started + STARTUP_TIMEOUT_S:
                self.drop_lane(lane, self.pool.start_failed)

    def run(self, workers: int) -> list[bool | None]:
        for _ in range(max(1, min(workers, len(self.requests)))):
            if not self.add_lane():
                break
        while self.pending or any(lane.queued for lane in self.lanes.values()):
            if not self.lanes and not self.add_lane():
                break  # no worker starts: the rest stays None
            self.feed()
            if not self.lanes:
                continue  # the workers died while idle: take others
            deadline = self.next_deadline()
            wait_ms = None  # no limit: wait for an answer
            if deadline is not None and deadline < math.inf:
                wait_ms = max(0.0, deadline - time.monotonic()) * 1000
            for fd, _ in self.poller.poll(wait_ms):
                if fd in self.lanes:
                    self.collect(self.lanes[fd])
            self.expire()
        for lane in self.lanes.values():
            self.pool.give_back(lane.worker)
        return self.verdicts


def grade_batch(
    pool: WorkerPool, requests: list[dict], limit_s: float, workers: int = 1
) -> list[bool | None]:
    """Each request's verdict, graded on up to ``workers`` workers of ``pool``.

    Args:
        pool: Where workers come from and go back to.
        requests: Keyword arguments of
            :func:`~bgpo_lightning.tasks.math_grader.is_equivalent_in_process`.
        limit_s: Seconds per answer after which its worker is killed (plus ``KILL_MARGIN_S``);
            ``<= 0``: none.
        workers: How many workers grade the batch at once.

    Returns:
        ``True``/``False`` per request (``False`` when its worker was killed or crashed on
        it), or ``None`` for requests no worker could take (workers do not start).
    """
    return _Batch(pool, requests, limit_s).run(workers)
