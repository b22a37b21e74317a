"""Shards that start together share the reference cache: one relaxes what it lacks, the other waits and reads it."""

import json
import subprocess
import sys

from tests.conftest import ROOT

SHARD = """
import json, sys, time, torch
from pymatgen.core import Lattice, Structure
from torch_sim.models.lennard_jones import LennardJonesModel
import engine.references.cache as rc
from engine.relax.fire import RelaxSettings
from engine.models import LoadedModel
from engine.references.sources import ReferencePhase

relaxed = []
original = rc.relax
def counting(structures, ids, *args, **kwargs):
    relaxed.extend(ids)
    time.sleep(2.0)  # hold the lock long enough for the other shard to queue behind it
    return original(structures, ids, *args, **kwargs)
rc.relax = counting
lj = LennardJonesModel(sigma=3.405, epsilon=0.0104, cutoff=8.0, dtype=torch.float64)
loaded = LoadedModel(lj, "lj", "lj", frozenset({18}), 8.0, "abc", "")
phases = [ReferencePhase(f"ar-{a}", Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Ar"], [[0, 0, 0]]), "test")
          for a in (5.1, 5.3, 5.5)]
print("ready", flush=True)
sys.stdin.readline()  # both shards start relaxing at the same moment
out = rc.relax_references(phases, loaded, RelaxSettings(fmax=0.01, max_steps=200), sys.argv[1])
print(json.dumps({"relaxed": relaxed, "energy": {k: r.energy for k, r in out.items()}}), flush=True)
"""


def test_two_shards_starting_together_relax_each_reference_once(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", SHARD, str(tmp_path / "cache")], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.communicate(timeout=300)[0].strip().splitlines()[-1]) for p in procs]
    assert sorted(len(r["relaxed"]) for r in results) == [0, 3]  # one shard relaxed all three, the other none
    assert results[0]["energy"] == results[1]["energy"]
