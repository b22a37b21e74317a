"""Batched Berendsen thermostat for torch-sim MD states (torch-sim ships none).

Berendsen, Postma, van Gunsteren, DiNola & Haak, J. Chem. Phys. 81, 3684 (1984): after each step the momenta
of system ``s`` are scaled by

    λ_s = sqrt(1 + (Δt/τ_s) (kT_target,s / kT_s − 1)),

which relaxes the kinetic temperature exponentially towards the target with time constant τ. Every system of
the batch has its own target, coupling time and current temperature. The rescaling is a separate function, so it
composes with any torch-sim step (``nve_step`` here; it could follow a Nosé–Hoover step as well).

Units follow torch-sim's metal units: kT [eV], Δt and τ in the internal time unit (``ps * 1000 * ase.units.fs``).
The temperature uses 3N − 3 degrees of freedom, because the initial momenta carry no centre-of-mass motion and
no step here adds any.
"""

from __future__ import annotations

from typing import Any

import torch
from torch_sim.integrators.md import MDState
from torch_sim.integrators.nve import nve_init, nve_step
from torch_sim.models.interface import ModelInterface
from torch_sim.state import SimState


def system_kT(state: MDState) -> torch.Tensor:
    """Kinetic temperature kT [eV] of every system, with 3N − 3 degrees of freedom."""
    p2m = (state.momenta.square().sum(dim=1) / state.masses)
    twice_ke = torch.zeros(state.n_systems, dtype=p2m.dtype, device=p2m.device).index_add_(0, state.system_idx, p2m)
    dof = 3 * state.n_atoms_per_system - 3
    return twice_ke / dof.clamp(min=1).to(p2m.dtype)


def berendsen_lambda(kT: torch.Tensor, kT_target: torch.Tensor, dt: torch.Tensor, tau: torch.Tensor,
                     bounds: tuple[float, float] = (0.8, 1.25)) -> torch.Tensor:
    """Berendsen scaling factor λ = sqrt(1 + dt/τ (kT_target/kT − 1)), shape (n_systems,); kT and kT_target in eV,
    dt and τ in the same time unit (scalars or (n_systems,)). ``bounds`` clip λ so one bad step cannot blow the
    momenta up."""
    ratio = torch.where(kT > 0, kT_target / kT, torch.ones_like(kT))
    lam2 = 1.0 + dt / tau * (ratio - 1.0)
    return lam2.clamp(min=0.0).sqrt().clamp(*bounds)


def berendsen_rescale[T: MDState](state: T, *, kT: torch.Tensor | float, dt: torch.Tensor | float,
                                  tau: torch.Tensor | float) -> T:
    """Scale the momenta of every system by its Berendsen λ: kT [eV], dt and tau [ASE time units] scalars or
    (n_systems,)."""
    as_t = lambda x: torch.as_tensor(x, dtype=state.dtype, device=state.device)
    lam = berendsen_lambda(system_kT(state), as_t(kT), as_t(dt), as_t(tau))
    state.set_constrained_momenta(state.momenta * lam[state.system_idx, None])
    return state


def nvt_berendsen_init(state: SimState, model: ModelInterface, *, kT: torch.Tensor | float,
                       **kwargs: Any) -> MDState:
    """Forces and Maxwell–Boltzmann momenta at ``kT`` [eV, scalar or (n_systems,)] (or the momenta the state
    already has)."""
    return nve_init(state, model, kT=kT, **kwargs)


def nvt_berendsen_step(state: MDState, model: ModelInterface, *, dt: torch.Tensor | float,
                       kT: torch.Tensor | float, tau: torch.Tensor | float, **_: Any) -> MDState:
    """One velocity-Verlet step of ``dt`` [ASE time units] followed by the Berendsen rescaling towards ``kT`` [eV]
    with time constant ``tau`` (same units as dt); each a scalar or (n_systems,)."""
    state = nve_step(state, model, dt=dt)
    return berendsen_rescale(state, kT=kT, dt=dt, tau=tau)
