"""Fault injection for the kill tests, kept out of the engine: ``python -m tests.faults STAGE:N [overrides]`` runs
``python -m engine.screen [overrides]`` with progress bars that SIGKILL the process once STAGE has reported N results
(``sampling`` is the built-in sampler's bar)."""

import contextlib
import os
import runpy
import signal
import sys

from engine.run import Run


def kill_after(stage: str, n: int) -> None:
    """Patch :meth:`engine.run.Run.progress` so that ``stage``'s bar SIGKILLs this process at ``n`` results."""
    progress = Run.progress.__wrapped__  # the generator function under contextmanager

    @contextlib.contextmanager
    def killing_progress(self, name: str, total, unit: str = "structure"):
        with contextlib.contextmanager(progress)(self, name, total, unit) as bar:
            if name == stage:
                update = bar.update

                def update_then_die(k=1):
                    update(k)
                    if bar.n >= n:
                        os.kill(os.getpid(), signal.SIGKILL)
                bar.update = update_then_die
            yield bar

    Run.progress = killing_progress


def command(kill_at: str, *overrides: str) -> list[str]:
    """The command line of a screen killed at ``kill_at`` = ``"<stage>:<n>"``."""
    return [sys.executable, "-m", "tests.faults", kill_at, *overrides]


if __name__ == "__main__":
    where, _, count = sys.argv[1].partition(":")
    kill_after(where, int(count))
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    runpy.run_module("engine.screen", run_name="__main__", alter_sys=True)
