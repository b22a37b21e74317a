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

Stages write typed rows (:mod:`engine.core.rows`) with :meth:`ResultStore.append_rows`, group attributes with
:meth:`ResultStore.set_attrs` and large per-candidate arrays (probe grids, MD trajectories) with
:meth:`ResultStore.write_array` / :meth:`ResultStore.extend_array`; nothing else in the engine opens the file.
Every append writes its columns and then commits the rows by raising the group's ``rows`` attribute (the number
of committed rows; readers read that many), flushing before and after: a run killed during an append leaves the
rows before it, never a row with some columns missing, and the next append overwrites the uncommitted tail. A stage
asks :meth:`ResultStore.done_ids` what it may skip.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
from pymatgen.core import Structure

from engine.core.crystals import Crystal, Crystals
from engine.core.rows import Row, Status
from engine.core.stopping import deferred
from engine.io.columns import as_array, is_structure_type, pack_structures, row_columns, typed_column

log = logging.getLogger(__name__)
STATUSES = tuple(s.value for s in Status)
_STR = h5py.string_dtype("utf-8")
WRITING = "writing"  # root attribute, set while an append is under way: found at opening, the file is rebuilt


class ResultStore:
    """Append-only, resumable HDF5 results of one run. Use as a context manager."""

    def __init__(self, path: str | Path, mode: str = "a"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.h5 = h5py.File(self.path, mode)
        self._current_cache: dict[str, tuple] = {}
        if mode in ("a", "r+") and self.h5.attrs.get(WRITING):
            self._rebuild()

    def _rebuild(self) -> None:
        """Rewrite the file from its committed rows, arrays and attributes: a writer was killed during an append,
        and HDF5 may have been left with a damaged heap that further appends would fail on."""
        log.warning("%s: the last run was killed while writing %s; rebuilding the file from its committed rows",
                    self.path, self.h5.attrs[WRITING])
        tmp = self.path.with_name(self.path.name + ".rebuild")
        with ResultStore(tmp, "w") as fresh:
            fresh.h5.attrs.update({k: v for k, v in self.h5.attrs.items() if k != WRITING})
            for name, node in self.h5.items():
                if not self.has(name):
                    fresh.copy_from(self, name)
                    continue
                fresh.copy_rows_from(self, name)
                fresh.set_attrs(name, self.attrs(name))
                for sub in node:
                    if sub != "structure" and isinstance(node[sub], h5py.Group):
                        fresh.copy_from(self, f"{name}/{sub}")
        self.h5.close()
        os.replace(tmp, self.path)
        self.h5 = h5py.File(self.path, "a")

    def copy_rows_from(self, other: ResultStore, group_name: str, keep: Sequence[int] | None = None) -> None:
        """Append the committed rows ``keep`` (all by default) of ``other``'s group, structures included."""
        ids = other.ids(group_name)
        keep = np.arange(len(ids)) if keep is None else np.asarray(keep, dtype=np.int64)
        columns = {c: other.column(group_name, c)[keep] for c in other.column_names(group_name)
                   if c not in ("id", "status", "reason")}
        by_id = other.crystals_by_id(group_name) if other.exists(f"{group_name}/structure") else None
        structures = None if by_id is None else [by_id.get(ids[i]) for i in keep]  # the stored arrays, bit for bit
        self.append(group_name, [ids[i] for i in keep], list(other.column(group_name, "status")[keep]),
                    list(other.column(group_name, "reason")[keep]), columns, structures)

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
        return {"config": a.get("config", ""), "versions": json.loads(a.get("versions", "{}")),
                "models": json.loads(a.get("models", "{}")), "created": a.get("created", "")}

    # ---- rows ---------------------------------------------------------------------------------
    @staticmethod
    def _rows(group: h5py.Group) -> int:
        """Committed rows of a group (files without the attribute: every row of ``id``)."""
        if "rows" in group.attrs:
            return int(group.attrs["rows"])
        return group["id"].shape[0] if "id" in group else 0

    @staticmethod
    def _write_columns(group: h5py.Group, columns: Mapping[str, np.ndarray], start: int) -> None:
        """Write ``columns`` from row ``start`` on (an uncommitted tail left by a kill is overwritten)."""
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise ValueError(f"columns of unequal length: { {k: len(v) for k, v in columns.items()} }")
        for name, values in columns.items():
            values = as_array(values)
            if name not in group:
                dtype = _STR if values.dtype.kind in "OU" else values.dtype
                # uncompressed: appending rewrites the dataset's last chunk, committed rows included, and a
                # compressed chunk torn by a kill would take those rows with it (an uncompressed one is rewritten
                # with the same bytes)
                group.create_dataset(name, shape=(0, *values.shape[1:]), maxshape=(None, *values.shape[1:]),
                                     dtype=dtype, chunks=True)
            ds = group[name]
            ds.resize(start + len(values), axis=0)
            if len(values):
                ds[start:] = values

    def _write_ragged(self, group: h5py.Group, structures: Sequence[Structure | Crystal | None], start: int) -> None:
        packed = pack_structures(structures)
        sgroup = group.require_group("structure")
        atoms_before = int(sgroup["offset"][start - 1] + sgroup["natoms"][start - 1]) if start else 0
        offsets = atoms_before + np.concatenate([[0], np.cumsum(packed["natoms"])[:-1]]).astype(np.int64)
        self._write_columns(sgroup, {"natoms": packed["natoms"], "offset": offsets[: len(structures)],
                                     "cell": packed["cell"], "pbc": packed["pbc"]}, start)
        self._write_columns(sgroup, {"numbers": packed["numbers"], "positions": packed["positions"]}, atoms_before)

    def append(self, group_name: str, ids: Sequence[str], status: Sequence[str], reason: Sequence[str],
               columns: Mapping[str, Iterable] | None = None,
               structures: Sequence[Structure | Crystal | None] | None = None) -> None:
        """Append finished rows to ``group_name`` and flush. ``structures`` (optional) aligns with ``ids``;
        a row without a structure (e.g. an error) is given an empty one."""
        if bad := set(status) - set(STATUSES):
            raise ValueError(f"unknown status {bad}; use one of {STATUSES}")
        with deferred():  # a stop signal waits for the commit
            group = self.h5.require_group(group_name)
            start = self._rows(group)
            group.attrs["rows"] = start  # a new group: no row is committed before the commit below
            self.h5.attrs[WRITING] = group_name
            self.h5.flush()
            cols = {"id": list(ids), "status": list(status), "reason": list(reason),
                    **{k: as_array(v) for k, v in (columns or {}).items()}}
            self._write_columns(group, cols, start)
            if structures is not None:
                self._write_ragged(group, structures, start)
            self.h5.flush()
            group.attrs["rows"] = start + len(ids)  # the commit
            self.h5.attrs[WRITING] = ""
            self.h5.flush()

    def append_rows(self, group_name: str, rows: Sequence[Row]) -> None:
        """Append typed rows (all of one dataclass) to ``group_name`` and flush; a ``Structure | None`` field goes
        to the ragged ``structure/`` subgroup."""
        if not rows:
            return
        columns, structures = {}, None
        for name, tp in row_columns(type(rows[0])):
            values = [getattr(r, name) for r in rows]
            if is_structure_type(tp):
                structures = values
            else:
                columns[name] = typed_column(tp, values)
        self.append(group_name, [r.id for r in rows], [str(r.status) for r in rows], [r.reason for r in rows],
                    columns, structures)

    # ---- group attributes and per-candidate arrays ------------------------------------------------------
    def set_attrs(self, group_name: str, values: Mapping[str, object]) -> None:
        """Set attributes of the group at ``group_name`` (a path; created if absent); None values are skipped, and
        settings' StrEnum choices are written as their plain strings (h5py has no conversion for str subclasses)."""
        self.h5.require_group(group_name).attrs.update(
            {k: str(v) if isinstance(v, str) else v for k, v in values.items() if v is not None})
        self.h5.flush()

    def attrs(self, group_name: str) -> dict[str, object]:
        """The attributes of ``group_name`` as plain Python values ({} when the group is absent; the store's own
        ``rows`` left out)."""
        if group_name not in self.h5:
            return {}
        return {k: v.item() if isinstance(v, np.generic) else v for k, v in self.h5[group_name].attrs.items()
                if k != "rows"}

    def write_array(self, path: str, data: np.ndarray, attrs: Mapping[str, object] | None = None,
                    growable: bool = False, chunk_rows: int | None = None, chunk_cols: int | None = None,
                    compress: bool = True) -> None:
        """Write ``data`` at ``path`` (replacing what is there), gzip-compressed unless not ``compress``; ``growable`` lets
        :meth:`extend_array` append along the first axis later, in chunks of ``chunk_rows`` rows and ``chunk_cols``
        entries of the second axis (all by default). Not flushed here: the stage's next row append flushes, and an
        array without its candidate's row is redone on resume."""
        self.delete(path)
        data = np.asarray(data)
        if data.dtype.kind in "OU":
            data = data.astype(_STR)
        kwargs = {"compression": "gzip", "compression_opts": 4} if data.ndim and compress else {}
        if growable:
            cols = (max(1, min(chunk_cols, data.shape[1])),) if chunk_cols and data.ndim > 1 else data.shape[1:2]
            kwargs.update(maxshape=(None, *data.shape[1:]),
                          chunks=(max(1, chunk_rows or 1), *cols, *data.shape[2:]))
        ds = self.h5.create_dataset(path, data=data, **kwargs)
        ds.attrs.update(dict(attrs or {}))

    def extend_array(self, path: str, data: np.ndarray) -> None:
        """Append ``data`` along the first axis of a dataset made with ``write_array(..., growable=True)``."""
        ds = self.h5[path]
        start = ds.shape[0]
        ds.resize(start + len(data), axis=0)
        ds[start:] = data

    def read_array(self, path: str) -> np.ndarray:
        ds = self.h5[path]
        return ds.asstr()[()] if h5py.check_string_dtype(ds.dtype) else ds[()]

    def read_slice(self, path: str, index: tuple) -> np.ndarray:
        """Part of the dataset at ``path`` (HDF5 reads only the chunks it touches)."""
        return self.h5[path][index]

    def delete(self, path: str) -> None:
        """Remove the dataset or group at ``path`` if there is one."""
        if path in self.h5:
            del self.h5[path]

    def exists(self, path: str) -> bool:
        return path in self.h5

    def children(self, path: str) -> list[str]:
        """Names directly under the group at ``path`` ([] when there is none)."""
        node = self.h5.get(path)
        return list(node) if isinstance(node, h5py.Group) else []

    def copy_from(self, other: ResultStore, path: str) -> None:
        """Copy the dataset or group at ``path`` of ``other`` to the same path here (replacing what is there)."""
        self.delete(path)
        parent, _, name = path.rpartition("/")
        other.h5.copy(other.h5[path], self.h5.require_group(parent) if parent else self.h5, name=name)

    # ---- reading ------------------------------------------------------------------------------
    def has(self, group_name: str) -> bool:
        return group_name in self.h5 and "id" in self.h5[group_name]

    def groups(self) -> list[str]:
        """Names of the groups that hold per-candidate rows."""
        return [name for name in self.h5 if self.has(name)]

    def column_names(self, group_name: str) -> list[str]:
        """The per-row columns of ``group_name`` (its datasets)."""
        return [k for k, v in self.h5[group_name].items() if isinstance(v, h5py.Dataset)]

    def column(self, group_name: str, name: str) -> np.ndarray:
        """One column of the current rows, (n_rows, ...): committed, and not superseded by a later row of the same id
        (a rerun's retry of a transient error)."""
        values = self._raw_column(group_name, name)
        current = self._current(group_name)
        return values if current is None else values[current]

    def _raw_column(self, group_name: str, name: str) -> np.ndarray:
        group = self.h5[group_name]
        ds, n = group[name], self._rows(group)
        return ds.asstr()[:n] if h5py.check_string_dtype(ds.dtype) else ds[:n]

    def _current(self, group_name: str) -> np.ndarray | None:
        """Mask of the committed rows that no later row of the same id supersedes; None when all are current."""
        key = (group_name, self._rows(self.h5[group_name]))
        if self._current_cache.get(group_name, (None,))[0] != key:
            ids = self._raw_column(group_name, "id")
            last = {cid: i for i, cid in enumerate(ids)}
            mask = None if len(last) == len(ids) else np.isin(np.arange(len(ids)), list(last.values()))
            self._current_cache[group_name] = (key, mask)
        return self._current_cache[group_name][1]

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
        """Ids a stage may skip: every current row but transient errors (out of memory, a whole batch's model
        failure), which a rerun retries."""
        done = self.ids(group_name)
        if not done or "transient" not in self.h5[group_name]:
            return set(done)
        retry = self.column(group_name, "transient") & (self.column(group_name, "status") == Status.ERROR)
        return {cid for cid, r in zip(done, retry) if not r}

    def crystals(self, group_name: str, ids: Sequence[str] | None = None) -> tuple[list[str], Crystals]:
        """(ids, ragged structures) of ``group_name``'s rows that have a structure, in row order (all, or those of
        ``ids``); the last row wins for repeated ids. Array slicing only: no pymatgen object is made."""
        g = self.h5[group_name]["structure"]
        n = self._rows(self.h5[group_name])
        natoms, offset = g["natoms"][:n], g["offset"][:n]
        row_ids = self._raw_column(group_name, "id")
        last = {str(cid): i for i, cid in enumerate(row_ids)}
        wanted = last if ids is None else {i: last[i] for i in ids if i in last}
        rows = np.array(sorted(i for i in wanted.values() if natoms[i] > 0), dtype=np.int64)
        whole = Crystals(natoms, g["numbers"][()], g["positions"][()], g["cell"][:n],
                         g["pbc"][:n] if "pbc" in g else np.ones((n, 3), bool))
        whole.offsets = offset  # as stored (cached_property)
        return [str(row_ids[i]) for i in rows], whole.take(rows)

    def crystals_by_id(self, group_name: str, ids: Sequence[str] | None = None) -> dict[str, Crystal]:
        """:meth:`crystals` as {id: Crystal}: the stored arrays (a pymatgen Structure would round them)."""
        found, crystals = self.crystals(group_name, ids)
        return {cid: crystals[k] for k, cid in enumerate(found)}

    def structures(self, group_name: str, ids: Sequence[str] | None = None) -> dict[str, Structure]:
        """Ragged structures of ``group_name`` as {id: Structure}; the last row wins for repeated ids."""
        found, crystals = self.crystals(group_name, ids)
        return dict(zip(found, crystals.to_structures()))
