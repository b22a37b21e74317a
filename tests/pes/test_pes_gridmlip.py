"""The framework-grid percolation barriers against gridmlip (Dembitskiy et al.; PyPI, MIT), an independent code for the
same descriptor: same relaxed structure, spacing, exclusion radius, probe-supercell width (gridmlip repeats the host
until every width reaches its r_cut) and model (SevenNet-0: the engine's torch-sim adapter here, the package's own
ASE calculator for gridmlip). The two codes lay their grids differently (gridmlip's mesh includes both faces of the
cell), so the barriers agree to the grid's resolution, not exactly. Measured: see the test's printout."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from engine.models import load_model, model_config
from engine.pes.probes import evaluate_jobs, make_job
from engine.pes.stage import PesSettings, approach_descriptors
from engine.relax.fire import RelaxSettings, relax

# (structure, grid spacing [Å]): gridmlip's mesh puts points on both faces of the cell (spacing a/(n-1) with a seam),
# so the two codes sample a saddle alike only on fine grids
HOSTS = {
    "LiF": (Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.03), ["Li", "F"], [[0, 0, 0], [.5, .5, .5]]), 0.15),
    "Li2O": (Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.61), ["Li", "O"], [[.25, .25, .25], [0, 0, 0]]),
             0.15),
    "Li2ZrCl6": (None, 0.15),  # the built-in trigonal Li2ZrCl6 (9 atoms), a Li conductor with a larger cell
}


def start_structure(name: str) -> Structure:
    structure, _ = HOSTS[name]
    if structure is None:
        from engine.references.builtin_phases import BUILTIN

        structure = next(p for p in BUILTIN if p.id == f"builtin:{name}-P-3m1").build()
    return structure


@pytest.mark.slow
@pytest.mark.parametrize("name", list(HOSTS))
def test_framework_barriers_agree_with_gridmlip(name):
    from gridmlip import Grid
    from sevenn.calculator import SevenNetCalculator

    loaded = load_model(model_config("sevennet_0"))
    rows = []
    spacing = HOSTS[name][1]
    relax([start_structure(name).get_primitive_structure()], [name], loaded, RelaxSettings(), rows.extend)
    structure = SpacegroupAnalyzer(rows[0].structure.to_structure()).get_conventional_standard_structure()
    settings = PesSettings(spacing=spacing, exclusion_radius=1.2, min_probe_width=5.0)
    job = make_job(name, structure, "framework", settings)
    evaluate_jobs([job], loaded, 4000)
    ours, _, _ = approach_descriptors(job, settings)

    grid = Grid(AseAtomsAdaptor.get_atoms(structure), specie=3, resolution=settings.spacing,
                r_cut=settings.min_probe_width, r_min=settings.exclusion_radius, verbose=False)
    calc = SevenNetCalculator("7net-0", device="cpu")
    energies = []
    for atoms in grid.construct_cfgs():
        atoms.calc = calc
        energies.append(atoms.get_potential_energy())
    grid.load_energies(np.array(energies))
    theirs = grid.percolation_barriers()
    got = [ours[f"barrier_{d}d"] for d in (1, 2, 3)]
    ref = [theirs[f"e{d}d"] for d in (1, 2, 3)]
    print(f"\n{name}: engine {np.round(got, 3)} ({job.grid.n_evaluated} probes x {len(job.evaluated_host) + 1} atoms),"
          f" gridmlip {np.round(ref, 3)} ({len(energies)} configurations)")
    for d, (a, b) in enumerate(zip(got, ref), start=1):
        if np.isinf(b) or b > 9.9:  # gridmlip: no percolation below its upper limit (10 eV)
            assert np.isinf(a) or a > 9.9, (d, a, b)
        else:
            assert a == pytest.approx(b, abs=0.05), (d, a, b)
