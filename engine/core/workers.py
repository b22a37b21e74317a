"""Host-side work spread over the machine's cores: one function mapped over items in worker processes (joblib's loky
executor, reused across the stages of a run), results in input order and independent of the number of workers.

Each item is isolated: an exception, or a worker process that dies (a crash in a C extension, the out-of-memory
killer), becomes a :class:`WorkerError` for that item alone, which the stage turns into an error row with the reason.
With one worker, or few items, everything runs in this process through the same function (no pool is started).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

log = logging.getLogger(__name__)

# below this many items a pool costs more than it saves (a worker imports its stage's modules: 1-5 s once per run)
MIN_PARALLEL_ITEMS = 8
WORKER_ENV = {"COATING_HOST_WORKER": "1",  # engine/__init__ skips torch-sim: a worker starts in about a second
              "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # one core per worker


@dataclass(frozen=True)
class WorkerError:
    """Why one item gave no result (``"ValueError: ..."``, or the worker's death)."""
    reason: str

    def __str__(self) -> str:
        return self.reason


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, as a batch scheduler sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(setting: int | None) -> int:
    """``workers`` of the config: null = every available core; at least 1."""
    return max(1, available_cores() if setting is None else int(setting))


def die_with_parent(parent: int, interval_s: float = 0.5) -> None:
    """A host worker's initializer: a daemon thread that ends the worker as soon as its run's process is gone (the
    worker is then re-parented). Without it a run killed by SIGKILL leaves its workers idle until loky's timeout,
    holding the run's stdout and stderr open. A watch rather than Linux's parent-death signal, which fires when the
    *thread* that started the worker ends, and loky starts workers from whichever thread submits or respawns."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(interval_s)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def shutdown_workers() -> None:
    """Stop this process's host workers now, if it has any (every exit path of a run)."""
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)


def _caught(fn: Callable, item):
    try:
        return fn(item)
    except Exception as exc:  # noqa: BLE001 - one item's failure is that item's error row, not the run's
        return WorkerError(f"{type(exc).__name__}: {exc}")


def map_isolated(fn: Callable, items: Iterable, workers: int = 1, progress: Callable[[int], None] | None = None,
                 min_items: int = MIN_PARALLEL_ITEMS) -> list:
    """``[fn(item) or WorkerError]`` in the order of ``items``, on ``workers`` processes when there are at least
    ``min_items`` items (else here). ``fn`` must be picklable (a module-level function, or a ``functools.partial``
    of one); ``progress(1)`` is called as each item finishes."""
    items = list(items)
    if workers <= 1 or len(items) < max(2, min_items):
        out = []
        for item in items:
            out.append(_caught(fn, item))
            if progress:
                progress(1)
        return out
    from joblib.externals.loky import get_reusable_executor

    def submit_all(indices, max_workers):
        executor = get_reusable_executor(max_workers=max_workers, timeout=300, env=WORKER_ENV,
                                         initializer=die_with_parent, initargs=(os.getpid(),))
        return [(i, executor.submit(_caught, fn, items[i])) for i in indices]

    out: list = [None] * len(items)
    lost = []
    # always ``workers`` processes: a pool resized for a shorter list would restart workers under another caller's
    # items (Ahead maps on a thread beside the stage's own maps)
    for i, future in submit_all(range(len(items)), workers):
        try:
            out[i] = future.result()
            if progress:
                progress(1)
        except Exception:  # noqa: BLE001 - a worker died: every item still in flight on the pool is lost with it
            lost.append(i)
    # a dying worker breaks the whole pool: each lost item alone in a fresh one, so only the culprit fails
    for i in lost:
        try:
            out[i] = submit_all([i], 1)[0][1].result()
        except Exception as exc:  # noqa: BLE001 - TerminatedWorkerError, or a result that cannot be pickled
            log.warning("a host worker failed on item %d: %s", i, str(exc).splitlines()[0] if str(exc) else exc)
            out[i] = WorkerError(f"worker process died: {type(exc).__name__}")
        if progress:
            progress(1)
    return out


class Ahead:
    """Host work started ahead, while the model works on what is at hand (the next chunk's grids while this chunk's
    probes are evaluated): ``submit(fn, *args)`` runs ``fn`` in a background thread, whose own host work goes to the
    host workers (or, with one worker, runs in that thread: the model's calls release the GIL); ``result()`` waits
    for it. ``work_s`` is the time the work took, ``waited_s`` the part of it the caller spent waiting: what did not
    overlap the model."""

    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="host-ahead")
        self.work_s = 0.0
        self.waited_s = 0.0

    def submit(self, fn: Callable, *args, **kwargs) -> _Pending:
        def timed():
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.work_s += time.perf_counter() - start

        return _Pending(self, self._pool.submit(timed))

    def __enter__(self) -> Ahead:
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class _Pending:
    ahead: Ahead
    future: Future

    def result(self):
        """The work's answer (its exception raised here), after waiting for it if it is not done."""
        start = time.perf_counter()
        try:
            return self.future.result()
        finally:
            self.ahead.waited_s += time.perf_counter() - start
