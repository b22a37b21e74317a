"""The stage table is the one list of stages: a new stage is one module, one conf group and one table line, and the
schema, the default stage list, the resume check, the feeders and the report follow from it."""

import shutil
import subprocess
import sys

import h5py
import pytest

from engine.config import frozen_on_resume, model_specs, schema
from engine.stages import STAGES, Stage, default_stages, feeders
from tests.conftest import ROOT, without_controls
from tests.test_shards import candidate_folder

TOY_MODULE = '''"""A toy stage: passes the candidates with at most ``max_atoms`` atoms in their relaxed cell."""
from dataclasses import dataclass

from engine.core.rows import Row, Status


@dataclass
class ToySettings:
    max_atoms: int = 100
    chunk_size: int = 2


@dataclass
class ToyRow(Row):
    n_atoms: int = 0


def run_stage(run) -> None:
    settings = run.settings("toy")

    def compute(ids):
        found, crystals = run.input_crystals("toy", ids)
        return [ToyRow(i, Status.PASS if len(c) <= settings.max_atoms else Status.FAIL, n_atoms=len(c))
                for i, c in zip(found, crystals)]

    run.run_chunks("toy", run.pending("toy"), settings.chunk_size, compute)


def funnel(store, cfg):
    return [(f"toy: at most {cfg.toy.max_atoms} atoms", None, "")]
'''
TABLE_LINE = ('    Stage("toy", toy.run_stage, toy.ToyRow, toy.ToySettings, "relax", default=False, funnel=toy.funnel),\n')


def test_feeders_follow_from_the_table_order_and_the_gates():
    assert feeders("bandgap") == ("candidates",)
    assert feeders("relax") == ("novelty", "bandgap", "candidates")
    assert feeders("relaxed_novelty") == ("relax",)  # references is no gate; nothing from before relax
    assert feeders("md") == ("pes", "phonons", "plausibility", "thermo", "relaxed_novelty", "relax")
    assert "md" not in default_stages() and default_stages()[0] == "candidates"


def test_the_schema_and_the_resume_check_come_from_the_table(tmp_path):
    """A stage line alone gives its config section, and a resume with changed settings of it is refused."""
    from dataclasses import dataclass

    from omegaconf import OmegaConf

    from engine.io.store import ResultStore
    from engine.screen import check_resumable

    @dataclass
    class ToySettings:
        max_atoms: int = 100

    toy = Stage("toy", print, STAGES[0].row, ToySettings, "relax")
    table = (*STAGES, toy)
    assert "toy" in schema(table).__dataclass_fields__ and "toy" in frozen_on_resume(table)
    assert "criteria" in frozen_on_resume() and "model" in frozen_on_resume() and "output" not in frozen_on_resume()
    with ResultStore(tmp_path / "r.h5") as store:
        store.write_metadata(OmegaConf.to_yaml({"toy": {"max_atoms": 2}, "output": "a.h5"}), {}, {})
        check_resumable(store, OmegaConf.create({"toy": {"max_atoms": 2}, "output": "b.h5"}), table)
        with pytest.raises(SystemExit, match="different toy settings"):
            check_resumable(store, OmegaConf.create({"toy": {"max_atoms": 1}}), table)
    assert set(model_specs()) == {("phonons", "model"), ("pes", "interstitial_model"), ("pes", "framework_model"),
                                  ("md", "model"), ("committee", "models")}


@pytest.fixture
def engine_copy(tmp_path):
    """A copy of the engine with a toy stage added the documented way, and nothing else changed."""
    root = tmp_path / "copy"
    for part in ("engine", "kernels", "conf"):
        shutil.copytree(ROOT / part, root / part, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "engine" / "toy").mkdir()
    (root / "engine" / "toy" / "__init__.py").write_text('"""A toy stage family."""\n')
    (root / "engine" / "toy" / "stage.py").write_text(TOY_MODULE)  # 1. one module
    (root / "conf" / "toy").mkdir()
    (root / "conf" / "toy" / "default.yaml").write_text("max_atoms: 2\n")  # 2. one conf group
    table = root / "engine" / "stages.py"
    text = table.read_text().replace("from engine.thermo import stage as thermo\n",
                                     "from engine.thermo import stage as thermo\nfrom engine.toy import stage as toy\n")
    closing = "\n)\n\n\ndef by_name"
    assert closing in text
    table.write_text(text.replace(closing, "\n" + TABLE_LINE.rstrip("\n") + closing, 1))  # 3. one table line
    return root


def screen_in(root, *args):
    return subprocess.run([sys.executable, "-m", "engine.screen", *without_controls(args)], cwd=root, capture_output=True, text=True,
                          timeout=600, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})


def test_a_toy_stage_added_through_one_module_one_conf_group_and_one_line_runs_resumes_and_is_reported(
        engine_copy, tmp_path):
    folder = candidate_folder(tmp_path)
    out = tmp_path / "toy.h5"
    args = ["model=sevennet_0", "model.kind=analytic", "candidates=files", f"candidates.path={folder}",
            "stages=[candidates,relax,toy]", f"output={out}"]
    first = screen_in(engine_copy, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    with h5py.File(out) as f:
        relaxed = sorted(i.decode() for i, s in zip(f["relax/id"][:], f["relax/status"][:]) if s == b"pass")
        assert sorted(x.decode() for x in f["toy/id"][:]) == relaxed and len(relaxed) >= 2
        verdicts = {(int(n), s.decode()) for n, s in zip(f["toy/n_atoms"][:], f["toy/status"][:])}
        assert verdicts == {(2, "pass"), (3, "fail")}  # max_atoms 2 from conf/toy/default.yaml; Li2O has 3
    again = screen_in(engine_copy, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    with h5py.File(out) as f:
        assert len(f["toy/id"]) == len(relaxed)  # resumed: nothing redone, nothing added
    report = (tmp_path / "toy_report" / "report.md").read_text()
    assert "| toy: at most 2 atoms |" in report
