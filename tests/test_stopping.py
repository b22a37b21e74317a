"""A killed or stopped run leaves nothing behind (engine/core/stopping.py, engine/core/workers.py): host workers die
with their run, and SIGTERM stops a run between two commits with exit status 143; the resume is
tests/test_screen.py's."""

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from engine.core.stopping import RunStopped, deferred, stop_on_signals
from tests.conftest import ROOT
from tests.faults import command


def test_a_signal_inside_a_deferred_section_stops_the_run_when_the_section_ends():
    def before(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, before)
    try:
        _stop_inside_a_deferred_section()
        assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_inside_a_deferred_section():
    with stop_on_signals():
        with pytest.raises(RunStopped) as stopped, deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            reached_the_end_of_the_section = True
        assert reached_the_end_of_the_section
        assert stopped.value.exit_status == 143 and str(stopped.value) == "SIGTERM"
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # a second signal stops the process at once


def test_outside_a_deferred_section_sigint_stops_at_once_with_status_130():
    with stop_on_signals(), pytest.raises(RunStopped) as stopped:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    assert stopped.value.exit_status == 130


def tagged_processes(tag: str) -> list[int]:
    """Pids of live processes whose environment holds ``tag``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if tag.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_after_kill_9_of_a_run_in_a_worker_stage_none_of_its_processes_remains(tmp_path):
    """The built-in sampler on 2 host workers, the run SIGKILLed once a candidate is sampled: the capture of its
    output ends with it (the workers do not hold its pipes), and 10 s later no process of the run is left."""
    tag = f"COATING_TEST_RUN={uuid.uuid4().hex}"
    name, value = tag.split("=")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", name: value}
    cmd = command("sampling:1", "controls=[]", "stages=[candidates]", "workers=2",
                  "candidates.chemical_systems=null", "candidates.n_systems=12", "candidates.per_system=2",
                  f"output={tmp_path}/k.h5")
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert time.time() - start < 120  # loky's idle workers used to hold the pipes for 5 minutes
    deadline = time.time() + 10
    while tagged_processes(value) and time.time() < deadline:
        time.sleep(0.5)
    assert tagged_processes(value) == []
