"""Tests for the grading workers: a hard time limit, reuse, restarts and the in-process fallback."""

from __future__ import annotations

import os
import time

import pytest

from bgpo_lightning.tasks import math_grader, math_pool
from bgpo_lightning.tasks.math_batch import KILL_MARGIN_S, grade_batch
from bgpo_lightning.tasks.math_grader import are_equivalent, is_equivalent
from bgpo_lightning.tasks.math_pool import WorkerPool
from tests.tasks.test_math_grader_cases import EQUIVALENT, WRONG

# Each spends 6-30 s in one big-integer operation, which no watchdog thread can interrupt.
SLOW = [
    "\\prod_{k=1}^{8191} 3^{k}",
    "3^{\\sum_{k=1}^{8191} k}",
    "\\left(\\sum_{k=1}^{2000} k\\right)!",
]
LIMIT_S = 2.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def warm_pool() -> WorkerPool:
    """The process's pool with a worker started: start-up is not part of the timings."""
    assert is_equivalent("1", "1")
    return math_pool.pool()


@pytest.mark.parametrize("expression", SLOW)
def test_slow_expressions_score_zero_within_the_limit(
    warm_pool: WorkerPool, expression: str
) -> None:
    start = time.monotonic()
    assert is_equivalent(expression, "5", time_limit_s=LIMIT_S) is False
    assert time.monotonic() - start < LIMIT_S + 1.0
    assert is_equivalent("\\frac12", "0.5", time_limit_s=LIMIT_S)


def test_a_worker_stuck_in_c_is_killed_at_the_limit_and_replaced(warm_pool: WorkerPool) -> None:
    # Without the in-process guards these reach sympy: its Python loops stop at the watchdog,
    # but 3**33550336 (the second) is one C call, which only killing the worker stops.
    killed: set[int] = set()
    for expression in SLOW:
        request = {"predicted": expression, "reference": "5", "time_limit_s": LIMIT_S}
        before = warm_pool.worker_pids()
        start = time.monotonic()
        assert grade_batch(warm_pool, [{**request, "guards": False}], LIMIT_S) == [False]
        assert time.monotonic() - start < LIMIT_S + 1.0
        killed |= before - warm_pool.worker_pids()
        start = time.monotonic()
        assert is_equivalent("\\frac12", "0.5", time_limit_s=LIMIT_S)  # on a live worker
        assert time.monotonic() - start < LIMIT_S
    assert killed and not any(_alive(pid) for pid in killed)


def test_workers_are_reused(warm_pool: WorkerPool) -> None:
    assert is_equivalent("2", "2")
    pids = warm_pool.worker_pids()
    for n in range(20):
        assert is_equivalent(str(n), str(n)) and not is_equivalent(str(n), str(n + 1))
    assert warm_pool.worker_pids() == pids  # no new worker: the same ones graded them all


def test_a_worker_killed_while_idle_is_replaced(warm_pool: WorkerPool) -> None:
    for pid in warm_pool.worker_pids():
        os.kill(pid, 9)
    time.sleep(0.2)
    assert is_equivalent("\\frac{3}{4}", "0.75")
    assert all(_alive(pid) for pid in warm_pool.worker_pids())


def test_a_worker_that_crashes_while_answering_gives_a_wrong_answer(
    warm_pool: WorkerPool,
) -> None:
    # An argument the worker does not know makes it raise outside the grading and exit.
    crash = {"predicted": "1", "reference": "1", "bogus": 1}
    assert grade_batch(warm_pool, [crash], LIMIT_S) == [False]
    assert is_equivalent("1", "1")


def test_without_workers_grading_falls_back_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def cannot_start() -> None:
        raise OSError("no processes here")

    pool = WorkerPool()
    monkeypatch.setattr(math_pool, "GradingWorker", cannot_start)
    request = {"predicted": "1", "reference": "1"}
    for _ in range(3):  # each start fails; after three, the pool stops trying
        assert grade_batch(pool, [request, request], LIMIT_S) == [None, None]
    assert pool.broken and pool.take() is None
    monkeypatch.setattr(
        math_grader, "grade_batch", lambda pool, requests, *_: [None] * len(requests)
    )
    assert is_equivalent("\\frac12", "0.5") and not is_equivalent("\\frac12", "0.4")
    assert math_grader._warned_in_process


def test_a_forked_child_grades_with_its_own_workers(warm_pool: WorkerPool) -> None:
    parent_pids = warm_pool.worker_pids()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        ok = is_equivalent("\\frac12", "0.5") and not is_equivalent("1", "2")
        own = math_pool.pool().worker_pids()
        os._exit(0 if ok and own and not own & parent_pids else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert is_equivalent("\\frac12", "0.5")
    assert warm_pool.worker_pids() == parent_pids


def test_kill_margin_leaves_room_within_a_second() -> None:
    assert 0 < KILL_MARGIN_S < 1.0


def test_a_batch_on_two_workers_matches_one_by_one(warm_pool: WorkerPool) -> None:
    pairs = EQUIVALENT + WRONG
    expected = [True] * len(EQUIVALENT) + [False] * len(WRONG)
    assert are_equivalent(pairs, workers=2) == expected
    assert are_equivalent([("18 apples", "18"), ("18 apples", "18")], numeric=[True, False]) == [
        True,
        False,
    ]
    assert are_equivalent([(None, "1"), ("1", ""), ("1", "1")]) == [False, False, True]
    assert are_equivalent([]) == []


def test_a_batch_loses_only_the_answers_that_hang(warm_pool: WorkerPool) -> None:
    def request(predicted: str, reference: str, guards: bool = True) -> dict:
        return {
            "predicted": predicted,
            "reference": reference,
            "time_limit_s": LIMIT_S,
            "guards": guards,
        }

    stuck = [request(expression, "5", guards=False) for expression in SLOW[:2]]
    good = [request(str(n), str(n)) for n in range(12)]
    requests = good[:3] + stuck[:1] + good[3:9] + stuck[1:] + good[9:]
    start = time.monotonic()
    verdicts = grade_batch(warm_pool, requests, LIMIT_S, workers=2)
    elapsed = time.monotonic() - start
    assert verdicts == [r["guards"] for r in requests]  # the stuck ones are False, the rest True
    assert elapsed < 2 * (LIMIT_S + 1.0)  # at worst one after the other
