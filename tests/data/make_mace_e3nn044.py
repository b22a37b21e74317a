"""Make tests/data/mace_e3nn044_small.model: a small random MACE pickled under e3nn 0.4.4 (as MACE foundation
checkpoints are), with its energies/forces/stresses on the three test structures computed under e3nn 0.4.4.

    pip install --no-deps --target /tmp/e3nn044 e3nn==0.4.4
    PYTHONPATH=/tmp/e3nn044 .venv/bin/python tests/data/make_mace_e3nn044.py
"""

import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import e3nn

assert e3nn.__version__ == "0.4.4", f"run with e3nn 0.4.4 first on the path, not {e3nn.__version__}"

from mace.calculators import MACECalculator
from pymatgen.io.ase import AseAtomsAdaptor

from tests.conftest import make_three_structures
from tests.models.mace_fixture import small_random_mace

path = HERE / "mace_e3nn044_small.model"
torch.save(small_random_mace(seed=1), path)
calc = MACECalculator(model_paths=str(path), device="cpu", default_dtype="float64")
ref = []
for s in make_three_structures():
    atoms = AseAtomsAdaptor.get_atoms(s)
    atoms.calc = calc
    ref.append({"energy": atoms.get_potential_energy(), "forces": atoms.get_forces().tolist(),
                "stress": atoms.get_stress(voigt=False).tolist()})
(HERE / "mace_e3nn044_small.json").write_text(json.dumps({"e3nn": e3nn.__version__, "results": ref}, indent=1))
print("wrote", path, path.stat().st_size, "bytes")
