"""Scale-out: shards of one screen through a real Hydra multirun on submitit's local executor, merged, equal the
unsharded run; merge refuses files that are not shards of one screen."""

import os
import subprocess
import sys

import pytest
from pymatgen.core import Lattice, Structure

from engine.io import report
from engine.io.compare import compare_groups
from engine.io.merge import MergeError, merge
from engine.io.store import ResultStore
from tests.conftest import ROOT, rattled
from tests.test_screen import screen

# Li-F, Li-Cl and Li-O references are in the session's cache once test_screen ran; relaxed otherwise
COMMON = ["stages=[candidates,novelty,relax,references,thermo]", "candidates=files", "novelty.references=false",
          "relax.max_steps=300", "threads=1", "references.prototypes=false"]


def candidate_folder(tmp_path):
    folder = tmp_path / "cands"
    folder.mkdir()
    lif = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.05), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    lif = lif.get_primitive_structure()
    lif.to(filename=str(folder / "lif.cif"))
    shifted = lif.copy()
    shifted.translate_sites(range(len(lif)), [0.25, 0.1, 0.0])  # the same crystal: a duplicate in the same shard
    shifted.to(filename=str(folder / "lif_shifted.cif"))
    licl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.2), ["Li", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    rattled(licl.get_primitive_structure(), [0.01, 0, 0], 0.0, 1).to(filename=str(folder / "licl.cif"))
    li2o = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.6), ["Li", "O"], [[0.25, 0.25, 0.25], [0, 0, 0]])
    li2o.get_primitive_structure().to(filename=str(folder / "li2o.cif"))
    (folder / "broken.cif").write_text("data_x\nloop_\n garbage\n")
    return folder


def test_two_shards_through_submitit_merge_into_the_unsharded_run(tmp_path):
    folder = candidate_folder(tmp_path)
    whole = tmp_path / "whole.h5"
    screen(*COMMON, f"candidates.path={folder}", f"output={whole}")
    cmd = [sys.executable, "-m", "engine.screen", "-m", "controls=[]", "hydra/launcher=local", "shard.count=2",
           "shard.index=0,1",
           f"output={tmp_path}/shard_${{shard.index}}.h5", f"hydra.sweep.dir={tmp_path}/multirun",
           *COMMON, f"candidates.path={folder}"]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert list((tmp_path / "multirun" / ".submitit").iterdir())  # the jobs went through submitit
    shards = [tmp_path / "shard_0.h5", tmp_path / "shard_1.h5"]
    ids = []
    for path in shards:
        with ResultStore(path, "r") as store:
            ids.append(set(store.ids("candidates")))
    assert ids[0] and ids[1] and not ids[0] & ids[1]  # disjoint slices, both non-empty
    assert {"lif", "lif_shifted"} <= ids[0] or {"lif", "lif_shifted"} <= ids[1]  # possible duplicates together

    merged = tmp_path / "merged.h5"  # the README's command
    proc = subprocess.run([sys.executable, "-m", "engine.io.merge", str(merged), *map(str, shards)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "candidates 5" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    with ResultStore(whole, "r") as a, ResultStore(merged, "r") as b:
        assert compare_groups(a, b, rtol=1e-6, atol=1e-5, structures_atol=1e-4) == []
        assert dict(zip(b.ids("novelty"), b.column("novelty", "reason")))["lif_shifted"] == "duplicate of lif"
        assert len(b.ids("thermo")) == 3

    report.main([str(p) for p in shards] + ["--out", str(tmp_path / "report")])  # a report of the shards together
    assert "| candidates generated or read | 5 |" in (tmp_path / "report" / "report.md").read_text()

    with pytest.raises(MergeError, match="exists"):
        merge(merged, shards)
    with pytest.raises(MergeError, match="candidates/.* is in both"):
        merge(tmp_path / "twice.h5", [shards[0], shards[0]])
    other = tmp_path / "other.h5"
    screen("stages=[candidates]", "candidates=files", f"candidates.path={folder}", "candidates.min_distance=0.5",
           f"output={other}")
    with pytest.raises(MergeError, match="other candidates, .*settings"):
        merge(tmp_path / "mixed.h5", [shards[0], other])
