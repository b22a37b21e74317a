"""The Ξ descriptor of Li-ion mobility from a single-ion potential-energy grid.

Maevskiy, Carvalho, Sataev, Turchyna, Noori, Rodin, Castro Neto & Ustyuzhanin, "Predicting ionic conductivity in
solids from the machine-learned potential energy landscape", Phys. Rev. Research 7, 023167 (2025),
arXiv:2411.06804; conventions as in the authors' reference code (github.com/SiLiKhon/pes_fingerprint,
``pipelines/analysis_utils.py``).

With ``E`` the probe energy on a regular grid over the cell and ``ΔE = E - min E``:

* disconnected free volume ``FV_d(ε)``: the fraction of grid points (of the whole cell, excluded points
  included in the count) with ``ΔE < ε``;
* connected free volume ``FV_c(ε)``: on the 2×2×2 block of cells centred on the global minimum (open
  boundaries), the fraction of its points joined to that minimum by a path of grid neighbours (26-connected)
  with ``ΔE < ε`` everywhere. Of a region with volume fraction ``f`` per cell this is ``f/8`` for an isolated
  pocket, ``f/4`` for a channel, ``f/2`` for a sheet and ``f`` for a 3D network, so percolation is rewarded;
* both are averaged over ``ε + δ`` for ``δ`` in ``(-0.04, -0.02, 0, 0.02, 0.04)`` eV to smooth the grid's
  discreteness, at ``ε = 0.5`` eV;
* ``Ξ = s(10 (log10 FV_c + 2)) · s(10 (log10 FV_d + 1.15))`` with the logistic ``s(t) = 1 / (1 + e^-t)``:
  close to 1 when more than about 1 % of the 2×2×2 block is connected and more than about 7 % of the cell is
  within ε of the minimum, close to 0 otherwise. The seed pipeline keeps candidates with ``Ξ > 0.8``.

The paper moves one of the structure's own Li over the grid; in this engine the probe is the interstitial Li
of the frozen relaxed structure (approach (a)), and the formula is applied unchanged to that grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.special import expit

SMEARING_EV = (-0.04, -0.02, 0.0, 0.02, 0.04)


@dataclass
class XiResult:
    """Ξ and the two free-volume fractions it is made of (all dimensionless, in [0, 1])."""
    xi: float
    fv_connected: float  # fraction of the 2×2×2 block, smeared, at the level
    fv_disconnected: float  # fraction of the cell, smeared, at the level


def disconnected_free_volume(energy: np.ndarray, level: float) -> float:
    """Fraction of the grid points with ``E - min E < level`` [eV]."""
    energy = np.asarray(energy, dtype=float)
    return float((energy - np.min(energy) < level).mean())


def connected_free_volume(energy: np.ndarray, level: float, connectivity: int = 26) -> float:
    """Fraction of the 2×2×2 block centred on the global minimum connected to it below ``level`` [eV]."""
    energy = np.asarray(energy, dtype=float)
    relative = energy - np.min(energy)
    seed = np.unravel_index(np.argmin(relative), relative.shape)
    block = np.tile(np.roll(relative, [-s for s in seed], axis=(0, 1, 2)), (2, 2, 2))
    centre = tuple(relative.shape)  # the minimum's copy in the middle of the block
    structure = ndimage.generate_binary_structure(3, 1 if connectivity == 6 else 3)
    labels, _ = ndimage.label(block < level, structure=structure)
    return float((labels == labels[centre]).mean())


def xi_descriptor(energy: np.ndarray, level: float = 0.5, smearing=SMEARING_EV, connectivity: int = 26) -> XiResult:
    """Ξ of an energy grid (eV; +inf at excluded points); NaN when the grid has no finite point."""
    energy = np.asarray(energy, dtype=float)
    if not np.isfinite(energy).any():
        return XiResult(float("nan"), float("nan"), float("nan"))
    fv_d = float(np.mean([disconnected_free_volume(energy, level + d) for d in smearing]))
    fv_c = float(np.mean([connected_free_volume(energy, level + d, connectivity) for d in smearing]))
    with np.errstate(divide="ignore"):
        xi = expit(10.0 * (np.log10(fv_c) + 2.0)) * expit(10.0 * (np.log10(fv_d) + 1.15))
    return XiResult(float(xi), fv_c, fv_d)
