"""Phonons stage (issue 18): batched finite displacements with SevenNet-0 and phonopy."""

import numpy as np
import pytest
from omegaconf import OmegaConf
from pymatgen.core import Lattice, Structure

from engine.core.crystals import Crystals
from engine.core.rows import Status
from engine.models import load_model
from engine.relax.fire import RelaxSettings, relax
from engine.stability.phonons import PhononSettings, phonon_rows
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def sevennet():
    return load_model(OmegaConf.load(ROOT / "conf/model/sevennet_0.yaml"), "cpu")


@pytest.fixture(scope="module")
def relaxed(sevennet):
    """Rock-salt LiF (primitive) and cubic BaTiO3, relaxed with SevenNet-0 (both stay cubic: their forces vanish by
    symmetry, so only the lattice parameter changes)."""
    lif = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.03), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    bto = Structure(Lattice.cubic(4.0), ["Ba", "Ti", "O", "O", "O"],
                    [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    rows = []
    relax([lif.get_primitive_structure(), bto], ["LiF", "BaTiO3"], sevennet, RelaxSettings(fmax=0.005), rows.extend)
    assert all(r.status == Status.PASS for r in rows)
    return {r.id: r.structure.to_structure() for r in rows}


def energy(loaded, structure: Structure) -> float:
    state = Crystals.from_structures([structure]).to_state(loaded.model.device, loaded.model.dtype)
    return float(loaded.model(state)["energy"].detach().double()[0])


def test_lif_is_stable_and_cubic_batio3_has_an_unstable_polar_mode(sevennet, relaxed):
    rows, jobs, _ = phonon_rows(relaxed, sevennet, PhononSettings())
    row = {r.id: r for r in rows}
    assert row["LiF"].status == Status.PASS and row["LiF"].verdict == "stable" and row["LiF"].n_imaginary == 0
    assert row["LiF"].min_frequency > 1.0  # THz: no soft mode anywhere on the commensurate grid
    bto = row["BaTiO3"]
    assert bto.status == Status.FAIL and bto.verdict == "unstable" and "imaginary" in bto.reason
    assert bto.min_frequency_gamma < -2.0  # THz; DFT (PBE) puts the polar mode near -5 THz

    # the softest Γ mode's eigenvector, as atomic displacements: the model's energy goes down along it
    phonon = next(j for j in jobs if j.id == "BaTiO3").phonon
    phonon.run_qpoints([[0, 0, 0]], with_eigenvectors=True)
    qd = phonon.get_qpoints_dict()
    band = int(np.argmin(qd["frequencies"][0]))
    vec = qd["eigenvectors"][0][:, band].reshape(-1, 3).real / np.sqrt(phonon.unitcell.masses)[:, None]
    u = 0.05 * vec / np.abs(vec).max()  # Å, largest displacement 0.05 Å
    s = relaxed["BaTiO3"]
    e0 = energy(sevennet, s)
    for sign in (1, -1):
        moved = Structure(s.lattice, s.species, s.cart_coords + sign * u, coords_are_cartesian=True)
        assert energy(sevennet, moved) < e0 - 1e-4, sign  # eV: a double well around the cubic structure


def test_batch_size_does_not_change_the_frequencies(sevennet, relaxed):
    wide, _, budget = phonon_rows(relaxed, sevennet, PhononSettings(cpu_atoms_per_batch=1000))  # all in one call
    narrow, _, small = phonon_rows(relaxed, sevennet, PhononSettings(max_atoms_per_batch=1))
    assert budget.atoms == 1000 and small.atoms == 54  # one supercell per model call (the largest has 54 atoms)
    for a, b in zip(wide, narrow):
        assert a.id == b.id and a.min_frequency == pytest.approx(b.min_frequency, abs=1e-3)


def test_a_candidate_the_model_cannot_take_is_an_error_and_the_rest_go_on(sevennet, relaxed):
    po = Structure(Lattice.cubic(3.4), ["Po"], [[0, 0, 0]])
    rows, _, _ = phonon_rows({"Po": po, "LiF": relaxed["LiF"]}, sevennet, PhononSettings())
    row = {r.id: r for r in rows}
    assert row["Po"].status == Status.ERROR and "Po" in row["Po"].reason and row["Po"].verdict == "n/a"
    assert row["LiF"].verdict == "stable"


