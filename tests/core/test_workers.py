"""Host workers: results in input order and the same with any number of workers; an item that raises, or whose
worker process dies, gets a WorkerError alone while the others finish."""

from __future__ import annotations

import os

from engine.core.workers import Ahead, WorkerError, map_isolated, worker_count


def square_unless_odd_fate(x: int) -> int:
    if x == 3:
        raise ValueError("three is refused")
    if x == 5:
        os._exit(1)  # the worker process dies, as under the out-of-memory killer or a segfault in C code
    return x * x


def square_or_raise(x: int) -> int:
    if x == 3:
        raise ValueError("three is refused")
    return x * x


def test_results_keep_input_order_and_do_not_depend_on_workers():
    serial = map_isolated(square_or_raise, range(12), workers=1)
    parallel = map_isolated(square_or_raise, range(12), workers=2)
    assert serial == parallel
    assert serial[:3] == [0, 1, 4] and serial[4:] == [x * x for x in range(4, 12)]
    assert serial[3] == WorkerError("ValueError: three is refused")


def test_a_dying_worker_costs_only_its_own_item():
    done = []
    out = map_isolated(square_unless_odd_fate, range(8), workers=2, progress=done.append)
    assert isinstance(out[5], WorkerError) and "died" in out[5].reason
    assert isinstance(out[3], WorkerError) and "three" in out[3].reason
    assert [out[i] for i in (0, 1, 2, 4, 6, 7)] == [0, 1, 4, 16, 36, 49]
    assert len(done) == 8  # every item reported once
    assert map_isolated(square_or_raise, [2, 4], workers=2, min_items=2) == [4, 16]  # the pool recovers


def test_worker_count():
    assert worker_count(1) == 1 and worker_count(3) == 3
    assert worker_count(None) >= 1


def test_work_ahead_runs_beside_the_caller_and_hands_back_its_answer_or_its_error():
    import threading

    import pytest

    started, caller_done = threading.Event(), threading.Event()

    def next_chunk(x):
        started.set()
        assert caller_done.wait(timeout=30)  # finishes only once the caller has done its own work meanwhile
        return map_isolated(square_or_raise, range(x), workers=2)

    with Ahead() as ahead:
        pending = ahead.submit(next_chunk, 10)
        assert started.wait(timeout=30)
        caller_done.set()  # the caller's work (the model on this chunk) while the next chunk is prepared
        assert pending.result() == map_isolated(square_or_raise, range(10))
        assert ahead.work_s > 0.0 and ahead.waited_s >= 0.0  # (waiting includes the hand-over: it may exceed the work)
        with pytest.raises(ZeroDivisionError):
            ahead.submit(lambda: 1 / 0).result()
