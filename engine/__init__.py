"""coating-screen's engine: the stages of the funnel, their settings, the run file and the report.

Importing any of it is quiet, in a notebook as under ``python -m engine.screen``: the packages' import-time notices
(torch's ``torch.jit.script`` deprecation raised inside e3nn and matgl, Warp's missing-CUDA-driver line printed from
native code) go to the ``py.warnings`` logger, which a run sends to its log file and a notebook leaves silent.
"""

import logging
import os
import warnings

from engine.terminal import native_stderr_held

warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
logging.getLogger("py.warnings").addHandler(logging.NullHandler())  # no last-resort printing outside a run
if not os.environ.get("COATING_HOST_WORKER"):  # host workers (engine.core.workers) import only what their work needs
    with native_stderr_held():
        import torch_sim  # noqa: F401 - initialises Warp, whose CUDA-driver notice is printed natively
