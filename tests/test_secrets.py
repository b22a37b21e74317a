"""No secret reaches a run's files, and neither secrets nor machine-local paths count when a run is resumed
(engine/core/settings.py, engine.config.stored_config)."""

import os
import subprocess
import sys

import yaml

from engine.io.store import ResultStore
from tests.conftest import ROOT
from tests.test_shards import candidate_folder

ENV_KEY, OVERRIDE_KEY = "envKEYd41d8cd98f00b204", "overrideKEY9800998ecf8427e"


def screen_in(tmp_path, *args, key=ENV_KEY):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MP_API_KEY": key}
    return subprocess.run([sys.executable, "-m", "engine.screen", "controls=[]", "references=mp_api", *args,
                           f"hydra.run.dir={tmp_path}/hydra"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def test_an_api_key_from_the_environment_or_an_override_is_in_no_file_of_the_run(tmp_path):
    folder = candidate_folder(tmp_path)
    out = tmp_path / "run.h5"
    args = ["stages=[candidates]", "candidates=files", f"candidates.path={folder}", f"output={out}"]
    first = screen_in(tmp_path, *args)
    second = screen_in(tmp_path, *args, f"references.api_key={OVERRIDE_KEY}",
                       f"references.cache_dir={tmp_path}/elsewhere", key="anotherKEY")
    for proc in (first, second):  # a resume with another key and another cache folder goes on
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert ENV_KEY not in proc.stdout + proc.stderr and OVERRIDE_KEY not in proc.stdout + proc.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file() and folder not in p.parents]
    assert out in files and any(p.suffix == ".md" for p in files) and any(p.suffix == ".log" for p in files)
    for path in files:
        data = path.read_bytes()
        assert ENV_KEY.encode() not in data and OVERRIDE_KEY.encode() not in data, path
    with ResultStore(out, "r") as store:
        stored = yaml.safe_load(store.metadata()["config"])
    assert stored["references"]["api_key"] == "<redacted>"
