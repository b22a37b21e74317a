"""kernels/diffusion.py against closed forms: random walkers of known D, Nernst–Einstein by hand."""

import math

import numpy as np
import pytest
import torch

from kernels.diffusion import (
    arrhenius_extrapolate,
    msd_fft,
    nernst_einstein_conductivity,
    windowed_diffusion,
)


def test_fft_msd_equals_direct_time_origin_average():
    x = torch.randn(57, 5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64).cumsum(0) + 100.0
    direct = torch.stack([((x[m:] - x[:len(x) - m]) ** 2).sum(-1).mean(0) for m in range(len(x))])
    assert torch.allclose(msd_fft(x), direct, atol=1e-9)


def walkers(d_A2_ps: float, n_atoms: int, n_frames: int, dt_ps: float, rng) -> np.ndarray:
    """Unwrapped positions of independent Brownian walkers: Gaussian steps of variance 2 D Δt per axis."""
    steps = rng.normal(0.0, math.sqrt(2 * d_A2_ps * dt_ps), size=(n_frames - 1, n_atoms, 3))
    return np.concatenate([np.zeros((1, n_atoms, 3)), steps.cumsum(axis=0)]) + rng.uniform(0, 10, (1, n_atoms, 3))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_windowed_estimator_recovers_known_d_within_two_sem(seed):
    rng = np.random.default_rng(seed)
    dt, n_frames = 0.1, 1001  # 100 ps sampled every 0.1 ps, the seed protocol's 15 ps windows
    li = walkers(0.05, 48, n_frames, dt, rng)
    na = walkers(0.01, 24, n_frames, dt, rng)
    frozen = rng.uniform(0, 10, (1, 32, 3)) + rng.normal(0, 0.1, (n_frames, 32, 3))  # vibrates, never diffuses
    pos = torch.as_tensor(np.concatenate([li, na, frozen], axis=1))
    species = np.array(["Li"] * 48 + ["Na"] * 24 + ["O"] * 32)
    est = windowed_diffusion(pos, species, dt, window_ps=15.0, fit_start_ps=3.0, fit_end_ps=15.0)
    assert est.d_windows.shape == (6, 3)  # 100 ps holds six back-to-back 15 ps windows
    for sp, d_true in (("Li", 0.05), ("Na", 0.01)):
        d, sem = est.of(sp)
        assert abs(d - d_true) < 2 * sem, (sp, d, sem)
        assert 0 < sem < 0.3 * d_true  # the uncertainty is informative, not huge
    d_o, sem_o = est.of("O")
    assert abs(d_o) < 1e-4 and sem_o < 1e-4  # D ≈ 0: below the 1e-4 Å²/ps the windows resolve
    # the largest Li MSD from t = 0 is of the order 6 D t_max
    assert 0.5 * 6 * 0.05 * 100 < est.max_msd[est.species.index("Li")] < 2 * 6 * 0.05 * 100


def test_window_longer_than_trajectory_is_an_error():
    with pytest.raises(ValueError, match="window"):
        windowed_diffusion(torch.zeros(10, 2, 3), np.array(["Li", "Li"]), 0.1, 15.0, 3.0, 15.0)


def test_nernst_einstein_and_arrhenius_against_hand_calculation():
    # 10 Li in 1000 Å³, D = 0.1 Å²/ps = 1e-9 m²/s, T = 500 K:
    # n = 1e28 m⁻³; σ = n e² D / (k_B T) = 1e28 · (1.602176634e-19)² · 1e-9 / (1.380649e-23 · 500)
    #   = 2.566970e-19 / 6.903245e-21 = 37.1850 S/m = 0.371850 S/cm
    sigma_500 = nernst_einstein_conductivity(0.1, 10, 1000.0, 500.0)
    assert sigma_500 == pytest.approx(0.371850, rel=1e-5)
    # σ(300 K) = σ(500 K) · (500/300) · exp(−0.5 eV / k_B · (1/300 − 1/500) K⁻¹)
    #   0.5 / 8.617333e-5 = 5802.26 K;  × 1.333333e-3 = 7.73635;  exp(−7.73635) = 4.3666e-4;  × 5/3 = 7.2777e-4
    sigma_300 = arrhenius_extrapolate(sigma_500, 500.0, 300.0, 0.5)
    assert sigma_300 == pytest.approx(0.371850 * 7.2777e-4, rel=1e-4)
    assert arrhenius_extrapolate(sigma_500, 500.0, 500.0, 0.5) == pytest.approx(sigma_500)
