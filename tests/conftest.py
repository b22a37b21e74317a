import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub look-up would retry ~45 s before failing offline
os.environ.setdefault("MACE_OFFLINE", "1")
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")  # tests read run files while a run writes them
# one reference cache for the whole session (subprocess runs included): references are relaxed once
os.environ.setdefault("COATING_CACHE", tempfile.mkdtemp(prefix="coating-cache-"))

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COATING_SHARED", ROOT.parent / "shared"))
MATGL_MODELS = ROOT / "engine" / "models" / "weights" / "matgl"  # shipped with the engine


def rattled(structure: Structure, strain, sigma: float, seed: int) -> Structure:
    """A strained copy with Gaussian displacements of ``sigma`` Å: non-zero forces and stress."""
    rng = np.random.default_rng(seed)
    s = structure.copy()
    s.apply_strain(strain)
    return Structure(s.lattice, s.species, s.cart_coords + rng.normal(scale=sigma, size=(len(s), 3)),
                     coords_are_cartesian=True)


@pytest.fixture(scope="session")
def three_structures() -> list[Structure]:
    return make_three_structures()


def make_three_structures() -> list[Structure]:
    """Three different small Li compounds (2, 3 and 8 atoms), strained and rattled."""
    lif = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.10), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    li2o = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.55), ["Li", "O"], [[0.25, 0.25, 0.25], [0, 0, 0]])
    li2alcl5 = Structure(
        Lattice.from_parameters(5.9, 6.3, 6.8, 88, 95, 101), ["Li", "Li", "Al", "Cl", "Cl", "Cl", "Cl", "Cl"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0.5], [0.25, 0.25, 0.1], [0.75, 0.25, 0.6], [0.25, 0.75, 0.35],
         [0.75, 0.7, 0.85], [0.0, 0.5, 0.0]])
    return [rattled(lif.get_primitive_structure(), [0.02, -0.01, 0.015], 0.05, 1),
            rattled(li2o.get_primitive_structure(), [-0.01, 0.02, 0.0], 0.05, 2),
            rattled(li2alcl5, [0.01, 0.0, -0.02], 0.03, 3)]


def without_controls(overrides) -> list[str]:
    """``overrides`` with ``controls=[]`` unless they set the controls: a test about something else screens only its
    own candidates (the controls have their own tests, tests/test_controls.py)."""
    return list(overrides) if any(o.startswith("controls=") for o in overrides) else ["controls=[]", *overrides]
