"""Stopping a run cleanly on SIGTERM or SIGINT (Slurm's ``scancel``, a time limit, a preemption, Ctrl-C).

Within :func:`stop_on_signals` the first such signal raises :class:`RunStopped` in the main thread at the next
point where Python runs (a model call in progress finishes first), except inside :func:`deferred` sections — an
append to the run file — where it is raised as the section ends, so no row is torn. The caller then commits nothing
more, stops its host workers and exits with ``128 + signal`` (143 for SIGTERM, 130 for SIGINT: what a shell and
Slurm report for a job the signal ended). A second signal is not caught: it stops the process at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunStopped(BaseException):
    """The run was asked to stop (a BaseException, like KeyboardInterrupt: no stage's ``except Exception`` keeps
    it from reaching the run)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


_state = threading.local()
_pending: list[int] = []  # a signal that arrived inside a deferred section


def _in_deferred() -> bool:
    return getattr(_state, "depth", 0) > 0


def _handle(signum, frame):
    for s in SIGNALS:  # the second signal takes the default action: the process stops at once
        signal.signal(s, signal.SIG_DFL)
    if _in_deferred():
        _pending.append(signum)
        return
    raise RunStopped(signum)


@contextlib.contextmanager
def deferred():
    """A section that a stop must not cut (it raises when the section ends). Re-entrant; a no-op off the main
    thread, where no signal handler runs."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
        if not _in_deferred() and _pending and threading.current_thread() is threading.main_thread():
            raise RunStopped(_pending.pop())


@contextlib.contextmanager
def stop_on_signals():
    """SIGTERM and SIGINT raise :class:`RunStopped` within (main thread only; elsewhere a no-op). The previous
    handlers come back on leaving."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    _pending.clear()
    for s in SIGNALS:
        signal.signal(s, _handle)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
