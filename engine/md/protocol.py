"""The MD protocol's settings (``conf/md/``): what every part of the MD stage reads. The defaults are the reference
pipeline's numbers (``md=paper``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.models.base import umlip_setting


@dataclass
class MdSettings:
    """Multi-replica NVT MD (``conf/md/``); times in ps or fs, temperatures in K, lengths in Å as named."""
    temperatures: list[float] = field(default_factory=lambda: [500.0, 1000.0])  # K, one replica per candidate and T
    transport_temperature: float = 500.0  # K, Li diffusion and conductivity
    framework_temperature: float = 1000.0  # K, framework stability
    timestep_fs: float = 1.0
    thermalisation_ps: float = 10.0  # Berendsen
    berendsen_tau_ps: float = 1.0
    production_ps: float = 100.0  # Nosé–Hoover chain
    nose_hoover_tau_fs: float = 25.0
    sample_interval_fs: float = 10.0  # unwrapped positions stored every this often
    min_atoms: int = 100
    min_width: float = 10.0  # Å, every perpendicular width of the supercell
    prerelax_fmax: float = 0.005  # eV/Å, fixed-cell relaxation before MD
    prerelax_max_steps: int = 2000
    window_ps: float = 15.0
    fit_start_ps: float = 3.0
    fit_end_ps: float = 15.0
    d_resolution: float = 1e-4  # Å²/ps, smaller D is below what the windows resolve
    activation_energy: float = 0.5  # eV, Arrhenius extrapolation of σ
    room_temperature: float = 300.0  # K
    sigma_min: float = 1e-6  # S/cm, σ(room) − s.e.m. must exceed it
    framework_msd_max: float = 2.0  # Å², 6 D_framework t_production at framework_temperature
    li_msd_min: float = 4.0  # Å², largest Li MSD over the production run at transport_temperature
    max_atoms_per_batch: int | None = None  # None: cpu_atoms_per_batch on a CPU, torch-sim's estimate on CUDA
    cpu_atoms_per_batch: int = 400  # (engine/batching.py)
    frames_per_flush: int = 100
    check_interval_fs: float = 50.0  # replicas are checked for explosions this often
    runaway_factor: float = 3.0  # T above this × target counts as runaway
    min_distance: float = 0.5  # Å, two atoms closer count as overlapping
    seed: int = 0
    model: Any = umlip_setting()  # null: the run's model; a name in conf/model/; or a model config

    def __post_init__(self):
        if not self.temperatures or min(self.temperatures) <= 0:
            raise ValueError(f"md.temperatures {list(self.temperatures)} must be positive (K)")
        for needed in (self.transport_temperature, self.framework_temperature):
            if needed not in self.temperatures:
                raise ValueError(f"md.temperatures {list(self.temperatures)} must include {needed:g} K "
                                 "(md.transport_temperature and md.framework_temperature)")
        if self.timestep_fs <= 0 or not 0 <= self.fit_start_ps < self.fit_end_ps <= self.window_ps:
            raise ValueError(f"md.timestep_fs ({self.timestep_fs}) must be > 0 and 0 <= md.fit_start_ps "
                             f"({self.fit_start_ps}) < md.fit_end_ps ({self.fit_end_ps}) <= md.window_ps ({self.window_ps})")

    def steps(self, ps: float) -> int:
        return round(ps * 1000.0 / self.timestep_fs)

    @property
    def sample_every(self) -> int:
        return max(1, round(self.sample_interval_fs / self.timestep_fs))

    @property
    def frame_interval_ps(self) -> float:
        return self.sample_every * self.timestep_fs / 1000.0
