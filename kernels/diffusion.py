"""Tracer diffusion from unwrapped MD positions: MSD per species, windowed fits, Nernst–Einstein conductivity.

The estimator follows Kahle, Marcolongo & Marzari, Energy Environ. Sci. 13, 928 (2020): the production run is cut
into windows (blocks) of ``window`` length; in each window the MSD of each species, averaged over atoms and over
all time origins inside the window, is fitted by a straight line between ``fit_start`` and ``fit_end``, giving
D = slope / 6. D is the mean over windows and its uncertainty the standard error of that mean.

Time-origin averaging uses the FFT algorithm (Kneller, Keiner, Kneller & Schiller, Comput. Phys. Commun. 91, 191
(1995)): MSD(m) = S1(m) − 2 S2(m) with S2 the position autocorrelation, O(N log N) instead of O(N²) per atom.

Units: positions Å, times ps, D Å²/ps, conductivity S/cm, temperature K, energies eV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import constants


def msd_fft(positions: torch.Tensor) -> torch.Tensor:
    """Time-origin-averaged MSD [Å²] of every atom for lags 0 … n_frames−1.

    positions: (n_frames, n_atoms, 3) unwrapped Cartesian positions [Å]. Returns (n_frames, n_atoms).
    """
    x = positions.to(torch.float64)
    x = x - x.mean(dim=0, keepdim=True)  # MSD is shift-invariant; centring keeps S1 − 2 S2 from cancelling badly
    n = x.shape[0]
    d = x.square().sum(dim=-1)  # (n, atoms)
    c = torch.cat([torch.zeros_like(d[:1]), d.cumsum(dim=0)])  # c[i] = Σ_{k<i} d[k]
    lags = torch.arange(n, device=x.device)
    counts = (n - lags).to(x.dtype)[:, None]
    s1 = (c[n - lags] + c[n] - c[lags]) / counts
    f = torch.fft.rfft(x, n=2 * n, dim=0)
    s2 = torch.fft.irfft(f * f.conj(), n=2 * n, dim=0)[:n].sum(dim=-1) / counts
    return s1 - 2.0 * s2


def msd_from_start(positions: torch.Tensor) -> torch.Tensor:
    """|r(t) − r(0)|² [Å²] of every atom, (n_frames, n_atoms)."""
    x = positions.to(torch.float64)
    return (x - x[:1]).square().sum(dim=-1)


def species_mean(per_atom: torch.Tensor, species: np.ndarray) -> tuple[list, torch.Tensor]:
    """Average an (n_frames, n_atoms) quantity over the atoms of each species: (labels, (n_frames, n_species))."""
    labels, inverse = np.unique(np.asarray(species), return_inverse=True)
    idx = torch.as_tensor(inverse, device=per_atom.device)
    sums = torch.zeros(per_atom.shape[0], len(labels), dtype=per_atom.dtype, device=per_atom.device)
    sums.index_add_(1, idx, per_atom)
    counts = torch.bincount(idx, minlength=len(labels)).to(per_atom.dtype)
    return labels.tolist(), sums / counts


def fit_slope(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Least-squares slope of every column of y (n_t, k) against t (n_t,)."""
    tc = t - t.mean()
    return (tc[:, None] * (y - y.mean(dim=0))).sum(dim=0) / tc.square().sum()


@dataclass
class DiffusionEstimate:
    """Diffusion coefficients per species from back-to-back MSD windows."""
    species: list  # labels, as given (e.g. atomic numbers)
    d: np.ndarray  # Å²/ps, mean over windows, one per species
    sem: np.ndarray  # Å²/ps, standard error of that mean (nan with a single window)
    d_windows: np.ndarray  # Å²/ps, (n_windows, n_species)
    max_msd: np.ndarray  # Å², largest species-mean |r(t) − r(0)|² over the whole run

    def of(self, label) -> tuple[float, float]:
        i = self.species.index(label)
        return float(self.d[i]), float(self.sem[i])


def windowed_diffusion(positions: torch.Tensor, species: np.ndarray, frame_interval_ps: float,
                       window_ps: float, fit_start_ps: float, fit_end_ps: float,
                       stride_ps: float | None = None) -> DiffusionEstimate:
    """D ± s.e.m. per species from windows of ``window_ps`` starting every ``stride_ps`` (default: back to back).

    positions: (n_frames, n_atoms, 3) unwrapped [Å], one frame every ``frame_interval_ps``; species: (n_atoms,).
    """
    if not 0 <= fit_start_ps < fit_end_ps <= window_ps:
        raise ValueError(f"need 0 <= fit_start < fit_end <= window, got {fit_start_ps}, {fit_end_ps}, {window_ps}")
    n_frames = positions.shape[0]
    width = round(window_ps / frame_interval_ps)  # lags per window; a window holds width + 1 frames
    stride = round((stride_ps or window_ps) / frame_interval_ps)
    if width < 2 or n_frames < width + 1:
        raise ValueError(f"a {window_ps} ps window needs {width + 1} frames at {frame_interval_ps} ps; "
                         f"the trajectory has {n_frames}")
    lag_t = torch.arange(width + 1, dtype=torch.float64, device=positions.device) * frame_interval_ps
    fit = (lag_t >= fit_start_ps - 1e-9) & (lag_t <= fit_end_ps + 1e-9)
    per_window = []
    labels = None
    for start in range(0, n_frames - width, stride):
        msd = msd_fft(positions[start:start + width + 1])
        labels, msd_species = species_mean(msd, species)
        per_window.append(fit_slope(lag_t[fit], msd_species[fit]) / 6.0)
    d_windows = torch.stack(per_window).cpu().numpy()
    n = len(d_windows)
    sem = d_windows.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full(d_windows.shape[1], np.nan)
    _, from_start = species_mean(msd_from_start(positions), species)
    return DiffusionEstimate(labels, d_windows.mean(axis=0), sem, d_windows,
                             from_start.max(dim=0).values.cpu().numpy())


def nernst_einstein_conductivity(d_A2_ps: float, n_carriers: int, volume_A3: float, temperature_K: float,
                                 charge: int = 1) -> float:
    """σ = n (z e)² D / (k_B T) [S/cm] for ``n_carriers`` ions of charge ``z`` in ``volume_A3`` (Haven ratio 1)."""
    n_m3 = n_carriers / (volume_A3 * constants.angstrom**3)
    d_m2_s = d_A2_ps * constants.angstrom**2 / constants.pico
    sigma_S_m = n_m3 * (charge * constants.e) ** 2 * d_m2_s / (constants.k * temperature_K)
    return sigma_S_m * constants.centi  # S/m → S/cm


def arrhenius_extrapolate(sigma: float, from_K: float, to_K: float, activation_eV: float) -> float:
    """σ(to_K) from σ(from_K) with σ ∝ (1/T) exp(−E_a / k_B T)."""
    k_eV = constants.k / constants.e
    return sigma * (from_K / to_K) * math.exp(-activation_eV / k_eV * (1.0 / to_K - 1.0 / from_K))
