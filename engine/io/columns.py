"""How typed rows and pymatgen structures become HDF5 columns (used by :mod:`engine.io.store`)."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from functools import cache

import numpy as np
from pymatgen.core import Structure

from engine.core.crystals import Crystal, Crystals
from engine.core.rows import Row

_SCALARS = {float: np.float64, int: np.int64, bool: np.bool_}


@cache
def row_columns(row_type: type[Row]) -> tuple[tuple[str, object], ...]:
    """(field name, resolved type) of a row dataclass's result fields (id, status and reason excluded)."""
    hints = typing.get_type_hints(row_type)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(row_type)
                 if f.name not in ("id", "status", "reason"))


def is_structure_type(tp) -> bool:
    return tp in (Structure, Crystal) or bool({Structure, Crystal} & set(typing.get_args(tp)))


def typed_column(tp, values: list) -> np.ndarray | list[str]:
    """One HDF5 column from the values of a row field of type ``tp``."""
    if tp is str:
        return [str(v) for v in values]
    if tp in _SCALARS:
        return np.asarray(values, dtype=_SCALARS[tp])
    if tp is np.ndarray:
        return np.stack([np.asarray(v) for v in values])
    raise TypeError(f"row field type {tp} has no HDF5 column type (use float, int, bool, str, np.ndarray)")


def as_array(values) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind not in "OU":
        return values
    arr = np.asarray(values)
    if arr.dtype.kind in "OU" or (arr.size == 0 and isinstance(values, list)):
        return np.asarray([str(v) for v in values], dtype=object)
    return arr


def pack_structures(structures: Sequence[Structure | Crystal | None] | Crystals) -> dict[str, np.ndarray]:
    """Ragged arrays (see :mod:`engine.io.store`) for a list of structures; ``None`` packs as an empty row (natoms 0,
    zero cell), for candidates that ended without a structure."""
    packed = structures if isinstance(structures, Crystals) else Crystals.from_structures(structures)
    return {"natoms": packed.natoms, "numbers": packed.numbers, "positions": packed.positions, "cell": packed.cell,
            "pbc": packed.pbc}
