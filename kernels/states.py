"""Selecting systems of a batched torch-sim state without a per-system loop."""

import torch
from torch_sim.state import SimState, _filter_attrs_by_index


def take_systems[T: SimState](state: T, system_indices: torch.Tensor) -> T:
    """The systems ``system_indices`` (increasing) of ``state``, renumbered 0, 1, …; the same state as
    ``state[system_indices]``.

    Why this exists: torch-sim 0.6's indexing builds the atom indices with one ``arange`` and two ``.item()`` per
    selected system, a host round trip each on a GPU and a tenth of a second per 10^4 systems on a CPU. Here they come
    from one mask over the atoms; the attributes are then cut by torch-sim's own scope-aware filter.
    """
    system_indices = system_indices.reshape(-1).to(device=state.device, dtype=torch.long)
    if len(system_indices) == 0:
        raise ValueError("no systems selected")
    chosen = torch.zeros(state.cell.shape[0], dtype=torch.bool, device=state.device)
    chosen[system_indices] = True
    atom_indices = torch.nonzero(chosen[state.system_idx]).flatten()
    return type(state)(**_filter_attrs_by_index(state, atom_indices, system_indices))
