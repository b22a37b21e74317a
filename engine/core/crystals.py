"""Periodic structures as ragged arrays: the run file's structure layout, and what the batched loops take and give.

A :class:`Crystals` holds many structures as a few arrays (atoms concatenated, one cell per structure), so that the
way from the HDF5 file to a batched torch-sim ``SimState`` and back is a handful of array operations, with no
pymatgen object per structure. :class:`Crystal` is one structure of it (array views); pymatgen ``Structure``s are
made only where a stage needs pymatgen's analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch_sim as ts
from ase.data import atomic_masses
from pymatgen.core import Lattice, Structure


@dataclass
class Crystal:
    """One periodic structure: atomic numbers (n,), Cartesian positions (n, 3) [Å], lattice vectors as rows (3, 3)
    [Å], periodicity (3,)."""
    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def volume(self) -> float:
        """Cell volume [Å³]."""
        return float(abs(np.linalg.det(self.cell)))

    @classmethod
    def from_structure(cls, s: Structure) -> Crystal:
        return cls(np.asarray(s.atomic_numbers, np.int64), s.cart_coords, s.lattice.matrix,
                   np.asarray(s.lattice.pbc, bool))

    def to_structure(self) -> Structure:
        # C order: pymatgen recomputes the Cartesian positions through the lattice's inverse, whose last bits depend
        # on the memory layout (a relaxation's cell is a transposed view; the same cell read back is not)
        return Structure(Lattice(np.ascontiguousarray(self.cell), pbc=tuple(bool(p) for p in self.pbc)),
                         self.numbers, np.ascontiguousarray(self.positions), coords_are_cartesian=True)


@dataclass
class Crystals:
    """Structures as ragged arrays: ``natoms`` (n,), ``numbers`` (N,), ``positions`` (N, 3) [Å, Cartesian],
    ``cell`` (n, 3, 3) [Å, rows], ``pbc`` (n, 3); structure ``i`` owns atoms ``offsets[i]:offsets[i] + natoms[i]``."""
    natoms: np.ndarray
    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray

    def __len__(self) -> int:
        return len(self.natoms)

    @cached_property
    def offsets(self) -> np.ndarray:
        """First atom of each structure, (n,)."""
        return np.concatenate([[0], np.cumsum(self.natoms)[:-1]]).astype(np.int64)

    @cached_property
    def system_idx(self) -> np.ndarray:
        """The structure each atom belongs to, (N,)."""
        return np.repeat(np.arange(len(self)), self.natoms)

    def __getitem__(self, i: int) -> Crystal:
        a = int(self.offsets[i])
        sl = slice(a, a + int(self.natoms[i]))
        return Crystal(self.numbers[sl], self.positions[sl], self.cell[i], self.pbc[i])

    def atoms_of(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Indices into the per-atom arrays of the structures ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return concatenated_ranges(self.offsets[indices], self.natoms[indices])

    def take(self, indices: Sequence[int] | np.ndarray) -> Crystals:
        """The structures ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        atoms = self.atoms_of(indices)
        return Crystals(self.natoms[indices], self.numbers[atoms], self.positions[atoms], self.cell[indices],
                        self.pbc[indices])

    @classmethod
    def copy_of(cls, structures: Sequence[Structure | Crystal | None] | Crystals) -> Crystals:
        """A :class:`Crystals` of its own (arrays copied) from pymatgen structures or another :class:`Crystals`."""
        if isinstance(structures, Crystals):
            return cls(*(getattr(structures, f).copy() for f in ("natoms", "numbers", "positions", "cell", "pbc")))
        return cls.from_structures(structures)

    def volumes(self) -> np.ndarray:
        """Cell volumes [Å³], (n,)."""
        return np.abs(np.linalg.det(self.cell)) if len(self) else np.zeros(0)

    def per_structure(self, atom_values: np.ndarray, ufunc=np.add) -> np.ndarray:
        """``ufunc`` reduced over each structure's atoms (e.g. ``np.logical_or`` of a per-atom flag), (n,)."""
        out = np.zeros(len(self), dtype=np.result_type(atom_values))
        ufunc.at(out, self.system_idx, atom_values)
        return out

    def to_state(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> ts.SimState:
        """One batched ``SimState``; system ``i`` is structure ``i``."""
        device = torch.device(device)
        numbers = torch.as_tensor(self.numbers, dtype=torch.long)
        return ts.SimState(
            positions=torch.as_tensor(self.positions, dtype=dtype).to(device),
            masses=torch.as_tensor(atomic_masses[self.numbers], dtype=dtype).to(device),
            cell=torch.as_tensor(self.cell, dtype=dtype).transpose(1, 2).contiguous().to(device),  # columns
            pbc=torch.as_tensor(self.pbc[0] if len(self) else [True] * 3, device=device),
            atomic_numbers=numbers.to(device),
            system_idx=torch.as_tensor(self.system_idx).to(device),
        )

    @classmethod
    def from_state(cls, state: ts.SimState) -> Crystals:
        """The structures of a batched state, moved to the host in one transfer per array."""
        natoms = state.n_atoms_per_system.cpu().numpy().astype(np.int64)
        pbc = state.pbc.detach().cpu().numpy() if torch.is_tensor(state.pbc) else np.array([state.pbc] * 3)
        return cls(natoms, state.atomic_numbers.cpu().numpy().astype(np.int64),
                   state.positions.detach().cpu().double().numpy(),
                   state.row_vector_cell.detach().cpu().double().numpy(),
                   np.broadcast_to(np.asarray(pbc, bool), (len(natoms), 3)).copy())

    @classmethod
    def from_structures(cls, structures: Sequence[Structure | Crystal | None]) -> Crystals:
        """Pack pymatgen structures (or :class:`Crystal`s); ``None`` packs as an empty entry (no atoms, zero cell)."""
        items = [None if s is None else s if isinstance(s, Crystal) else Crystal.from_structure(s)
                 for s in structures]
        present = [c for c in items if c is not None]
        return cls(
            np.array([0 if c is None else len(c) for c in items], dtype=np.int64),
            np.concatenate([np.zeros(0, np.int64)] + [c.numbers for c in present]).astype(np.int64),
            np.concatenate([np.zeros((0, 3))] + [c.positions for c in present]),
            np.stack([np.zeros((3, 3)) if c is None else c.cell for c in items]) if items else np.zeros((0, 3, 3)),
            np.array([[True] * 3 if c is None else c.pbc for c in items], bool).reshape(-1, 3),
        )

    def to_structures(self) -> list[Structure]:
        return [self[i].to_structure() for i in range(len(self))]


def concatenated_ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ranges ``starts[i]:starts[i] + counts[i]``, without a Python loop."""
    if len(counts) == 0:
        return np.zeros(0, np.int64)
    ends = np.cumsum(counts)
    return np.repeat(starts - (ends - counts), counts) + np.arange(ends[-1])
