"""Library noise off the terminal: Python warnings of the packages the engine loads (deprecations, model-version
notices, accelerator hints) and the native CUDA-driver notice Warp prints while it initialises go to the run's log
file (Hydra's ``<run dir>/screen.log``), so that the terminal shows progress bars, the summary and the engine's own
messages.

Both happen before Hydra has set up logging (at import) as well as during the run: early ones wait in a buffer and
join the log file once it exists.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys
import tempfile

WARNINGS = logging.getLogger("py.warnings")
_early = logging.handlers.MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1)


def hold_library_warnings() -> None:
    """Route ``warnings.warn`` through the ``py.warnings`` logger, held back until :func:`warnings_to_log_file`."""
    logging.captureWarnings(True)
    WARNINGS.propagate = False
    if _early not in WARNINGS.handlers:
        WARNINGS.addHandler(_early)


def warnings_to_log_file() -> None:
    """Send held and later library warnings to the root logger's file handlers (Hydra's job log); without one they
    go to the terminal after all."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    WARNINGS.removeHandler(_early)
    if not files:
        WARNINGS.propagate = True
    for h in files:
        WARNINGS.addHandler(h)
    for record in _early.buffer:
        for h in files or logging.getLogger().handlers:
            h.handle(record)
    _early.buffer.clear()


@contextlib.contextmanager
def native_stderr_held():
    """Whatever native code (and Python) writes to file descriptor 2 inside the block is logged as a warning of
    ``py.warnings`` instead of reaching the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode(errors="replace").strip()
            if text:
                WARNINGS.warning("%s", text)
