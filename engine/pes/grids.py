"""The pes stage's host-side work, done on the host workers: the probe grid of a frozen host (spglib, exclusion
radius) and the descriptors of an evaluated grid (Ξ, percolation barriers).

Free of torch and of the stage's settings class: a host worker that unpickles this work imports numpy, scipy and
spglib (about a second), where importing the stage would take torch, torch-sim and the models (about 10 s per worker,
once per run, which made ``workers=2`` slower than ``workers=1`` on small runs).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from kernels.grid import ProbeGrid, probe_grid
from kernels.percolation import percolation_barriers
from kernels.xi import xi_descriptor


@dataclass(frozen=True)
class GridParameters:
    """What the host workers read of ``conf/pes/`` (:class:`engine.pes.stage.PesSettings` holds their meaning)."""
    spacing: float  # Å
    exclusion_radius: float  # Å
    exclusion_scale: float  # of the Li-atom covalent-radius sum; 0: exclusion_radius alone
    use_symmetry: bool
    symprec: float  # Å
    connectivity: int
    xi_level: float  # eV
    xi_min: float
    barrier_max: float  # eV
    barrier_dimension: int

    @classmethod
    def of(cls, settings) -> GridParameters:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


def host_grid(host: tuple[np.ndarray, np.ndarray, np.ndarray], settings) -> ProbeGrid:
    """The probe grid of a frozen host given as arrays (lattice rows [Å], fractional coordinates, atomic numbers);
    ``settings`` gives ``spacing`` and ``exclusion_radius`` [Å], ``use_symmetry`` and ``symprec`` [Å]. Arrays, not
    a Structure, so that a host worker is sent only what it reads."""
    lattice, frac_coords, numbers = host
    return probe_grid(lattice, frac_coords, numbers, settings.spacing, exclusion_radii(numbers, settings),
                      settings.use_symmetry, settings.symprec)


def exclusion_radii(numbers: np.ndarray, settings) -> np.ndarray:
    """Per host atom, the distance [Å] within which no Li probe is computed: ``exclusion_radius``, or
    ``exclusion_scale`` times the sum of the covalent radii of Li and the atom (Cordero et al., Dalton Trans. 2008,
    2832; ``ase.data.covalent_radii``) where that is larger. A Li that close to a host atom is far up the repulsive wall
    (Li-Cl at 1.49 Å with the scale 0.65, against 2.57 Å in LiCl and 2.09 Å at its saddle; Li-O at 1.26 Å, Li2O's
    saddle at 1.63 Å; Li-Y at 2.07 Å), so such a point lies on no path below ``barrier_max`` and its energy, +inf,
    changes no barrier; the scale spares most of those points' model calls where the uniform radius spares few
    (docs/validation.md)."""
    from ase.data import covalent_radii

    numbers = np.asarray(numbers, dtype=np.int64)
    scaled = float(getattr(settings, "exclusion_scale", 0.0) or 0.0) * (covalent_radii[3] + covalent_radii[numbers])
    return np.maximum(float(settings.exclusion_radius), scaled)


def grid_descriptors(item: tuple[str, np.ndarray], settings) -> tuple[dict, bool, str]:
    """(columns, passed, why it failed) of ``item = (approach, energy map [eV])``: Ξ of the interstitial grid or the
    percolation barriers of the framework grid."""
    approach, grid = item
    if approach == "interstitial":
        if not np.isfinite(grid).any():  # every point too close to a host atom: no free volume at all
            return ({"xi": 0.0, "fv_connected": 0.0, "fv_disconnected": 0.0, "insertion_energy": np.inf,
                     "xi_pass": False}, False, "Ξ 0 (no grid point outside the exclusion radii)")
        xi = xi_descriptor(grid, settings.xi_level, connectivity=settings.connectivity)
        passed = bool(xi.xi > settings.xi_min)
        out = {"xi": xi.xi, "fv_connected": xi.fv_connected, "fv_disconnected": xi.fv_disconnected,
               "insertion_energy": float(np.min(grid)), "xi_pass": passed}
        return out, passed, "" if passed else f"Ξ {xi.xi:.2f} <= {settings.xi_min}"
    b = percolation_barriers(grid, settings.connectivity)
    d = settings.barrier_dimension
    passed = bool(b[d - 1] < settings.barrier_max)
    out = {"barrier_1d": b[0], "barrier_2d": b[1], "barrier_3d": b[2], "barrier_pass": passed}
    return out, passed, "" if passed else f"E_mig({d}D) {b[d - 1]:.2f} >= {settings.barrier_max} eV"


def grid_or_error(host: tuple, settings: GridParameters):
    """:func:`host_grid`, or the exception (e.g. spglib on a degenerate cell), which the job takes as its reason."""
    try:
        return host_grid(host, settings)
    except Exception as exc:  # noqa: BLE001 - one degenerate cell must not stop the others
        return exc


def descriptors_or_error(item: tuple[str, np.ndarray], settings: GridParameters):
    """:func:`grid_descriptors`, or the exception (the stage computes it again and records the failure)."""
    try:
        return grid_descriptors(item, settings)
    except Exception as exc:  # noqa: BLE001
        return exc
