"""One HDF5 file per screening run: candidates, per-stage result columns, run metadata.

Layout (h5py):

    /                          attrs: config (resolved Hydra YAML), versions (JSON), models (JSON: name,
                               source, sha256 of the weights), created (ISO time)
    /candidates/               one row per candidate, in input order
        id, source, formula, spacegroup, status, reason      (n,)
        structure/{natoms, offset, numbers, positions, cell, pbc}   ragged, see below
    /<stage>/                  one row per candidate the stage finished, in order of completion
        id, status, reason     (n,)      status in {"pass", "fail", "error"}; absent id = pending
        <column>               (n, ...)  e.g. relax/energy_per_atom [eV/atom], relax/stress [eV/Å³]
        structure/...          ragged structures written by the stage (e.g. relaxed cells)

Ragged structures: ``natoms[i]`` atoms of row ``i`` start at ``offset[i]`` in the per-atom arrays
``numbers`` (Z) and ``positions`` [Å, Cartesian]; ``cell`` is (n, 3, 3) [Å, row vectors].

Every append resizes the datasets and flushes the file, so a run killed at any moment keeps every row
written before; a stage asks :meth:`ResultStore.done_ids` what it may skip.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
from pymatgen.core import Lattice, Structure

STATUSES = ("pass", "fail", "error")
_STR = h5py.string_dtype("utf-8")


def _as_array(values) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind not in "OU":
        return values
    arr = np.asarray(values)
    if arr.dtype.kind in "OU" or (arr.size == 0 and isinstance(values, list)):
        return np.asarray([str(v) for v in values], dtype=object)
    return arr


def pack_structures(structures: Sequence[Structure | None]) -> dict[str, np.ndarray]:
    """Ragged arrays (see module docstring) for a list of pymatgen structures; ``None`` packs as an
    empty row (natoms 0, zero cell), for candidates that ended without a structure."""
    present = [s for s in structures if s is not None]
    return {
        "natoms": np.array([0 if s is None else len(s) for s in structures], dtype=np.int64),
        "numbers": np.concatenate([[]] + [s.atomic_numbers for s in present]).astype(np.int64),
        "positions": np.concatenate([np.zeros((0, 3))] + [s.cart_coords for s in present]),
        "cell": np.stack([np.zeros((3, 3)) if s is None else s.lattice.matrix for s in structures])
        if structures else np.zeros((0, 3, 3)),
        "pbc": np.array([[True] * 3 if s is None else s.lattice.pbc for s in structures], bool).reshape(-1, 3),
    }


class ResultStore:
    """Append-only, resumable HDF5 results of one run. Use as a context manager."""

    def __init__(self, path: str | Path, mode: str = "a"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.h5 = h5py.File(self.path, mode)

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.h5.id.valid:
            self.h5.flush()
            self.h5.close()

    # ---- run metadata -------------------------------------------------------------------------
    def write_metadata(self, config_yaml: str, versions: Mapping, models: Mapping) -> None:
        attrs = self.h5.attrs
        if "created" not in attrs:
            attrs["created"] = datetime.now(UTC).isoformat()
        attrs["config"] = config_yaml
        attrs["versions"] = json.dumps(dict(versions), sort_keys=True)
        self.record_models(models)

    def record_models(self, models: Mapping) -> None:
        """Add model provenance (role -> name, source, sha256) to the root attributes."""
        prior = json.loads(self.h5.attrs.get("models", "{}"))
        prior.update(models)
        self.h5.attrs["models"] = json.dumps(prior, sort_keys=True)
        self.h5.flush()

    def metadata(self) -> dict:
        a = self.h5.attrs
        return {
            "config": a.get("config", ""),
            "versions": json.loads(a.get("versions", "{}")),
            "models": json.loads(a.get("models", "{}")),
            "created": a.get("created", ""),
        }

    # ---- rows ---------------------------------------------------------------------------------
    def _append_columns(self, group: h5py.Group, columns: Mapping[str, np.ndarray]) -> None:
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise ValueError(f"columns of unequal length: { {k: len(v) for k, v in columns.items()} }")
        for name, values in columns.items():
            values = _as_array(values)
            if name not in group:
                dtype = _STR if values.dtype.kind in "OU" else values.dtype
                group.create_dataset(name, shape=(0, *values.shape[1:]), maxshape=(None, *values.shape[1:]),
                                     dtype=dtype, chunks=True, compression="gzip", compression_opts=4)
            ds = group[name]
            start = ds.shape[0]
            ds.resize(start + len(values), axis=0)
            if len(values):
                ds[start:] = values

    def _append_ragged(self, group: h5py.Group, structures: Sequence[Structure | None]) -> None:
        packed = pack_structures(structures)
        sgroup = group.require_group("structure")
        atoms_before = sgroup["numbers"].shape[0] if "numbers" in sgroup else 0
        offsets = atoms_before + np.concatenate([[0], np.cumsum(packed["natoms"])[:-1]]).astype(np.int64)
        self._append_columns(sgroup, {"natoms": packed["natoms"], "offset": offsets[: len(structures)],
                                      "cell": packed["cell"], "pbc": packed["pbc"]})
        self._append_columns(sgroup, {"numbers": packed["numbers"], "positions": packed["positions"]})

    def append(self, group_name: str, ids: Sequence[str], status: Sequence[str], reason: Sequence[str],
               columns: Mapping[str, Iterable] | None = None,
               structures: Sequence[Structure | None] | None = None) -> None:
        """Append finished rows to ``group_name`` and flush. ``structures`` (optional) aligns with ``ids``;
        a row without a structure (e.g. an error) is given an empty one."""
        bad = set(status) - set(STATUSES)
        if bad:
            raise ValueError(f"unknown status {bad}; use one of {STATUSES}")
        group = self.h5.require_group(group_name)
        cols = {"id": list(ids), "status": list(status), "reason": list(reason)}
        for k, v in (columns or {}).items():
            cols[k] = _as_array(v)
        self._append_columns(group, cols)
        if structures is not None:
            self._append_ragged(group, structures)
        self.h5.flush()

    # ---- reading ------------------------------------------------------------------------------
    def has(self, group_name: str) -> bool:
        return group_name in self.h5 and "id" in self.h5[group_name]

    def column(self, group_name: str, name: str) -> np.ndarray:
        ds = self.h5[group_name][name]
        return ds.asstr()[()] if h5py.check_string_dtype(ds.dtype) else ds[()]

    def column_by_id(self, group_name: str, name: str) -> dict[str, object]:
        """{id: value} of one column; empty when the stage has no rows."""
        if not self.has(group_name):
            return {}
        return dict(zip(self.ids(group_name), self.column(group_name, name)))

    def ids(self, group_name: str, status: str | None = None) -> list[str]:
        if not self.has(group_name):
            return []
        ids = self.column(group_name, "id")
        if status is not None:
            ids = ids[self.column(group_name, "status") == status]
        return [str(i) for i in ids]

    def done_ids(self, group_name: str) -> set[str]:
        return set(self.ids(group_name))

    def structures(self, group_name: str, ids: Sequence[str] | None = None) -> dict[str, Structure]:
        """Ragged structures of ``group_name`` as {id: Structure}; the last row wins for repeated ids."""
        g = self.h5[group_name]["structure"]
        natoms, offset, cell = g["natoms"][()], g["offset"][()], g["cell"][()]
        numbers, positions = g["numbers"][()], g["positions"][()]
        pbc = g["pbc"][()] if "pbc" in g else np.ones((len(natoms), 3), bool)
        row_ids = self.column(group_name, "id")
        wanted = None if ids is None else set(ids)
        out = {}
        for i, cid in enumerate(row_ids):
            if (wanted is not None and cid not in wanted) or natoms[i] == 0:
                continue
            sl = slice(offset[i], offset[i] + natoms[i])
            lattice = Lattice(cell[i], pbc=tuple(bool(p) for p in pbc[i]))
            out[str(cid)] = Structure(lattice, numbers[sl], positions[sl], coords_are_cartesian=True)
        return out

    def summary(self, group_name: str, top: int = 3) -> dict:
        """Counts per status and the most frequent reasons of non-passing rows."""
        if not self.has(group_name):
            return {"n": 0, **{s: 0 for s in STATUSES}, "top_reasons": []}
        status, reason = self.column(group_name, "status"), self.column(group_name, "reason")
        counts = Counter(status.tolist())
        reasons = Counter(r.split(":")[0] for s, r in zip(status, reason) if s != "pass")
        return {"n": len(status), **{s: counts.get(s, 0) for s in STATUSES},
                "top_reasons": reasons.most_common(top)}
