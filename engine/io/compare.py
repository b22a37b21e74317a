"""Compare two run files column by column: ``python -m engine.compare A.h5 B.h5 [--rtol R] [--atol A]``.

For every group of per-candidate rows in either file: the same ids, and for each column both files have, the same
value per id (text exactly, numbers — also those inside JSON text such as ``md/diffusion`` — within
``atol + rtol * |b|``, NaN equal to NaN, inf to inf of the same sign);
with ``--structures`` the ragged structures too (same species, cell and Cartesian positions within ``--atol-structure``
Å). Prints one line per difference and exits 1 when there is any: what a refactoring, a resumed run or a merge of
shards must leave unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from engine.core.crystals import Crystal
from engine.io.store import ResultStore


def _json(text):
    """The parsed value of a JSON text column (e.g. md/diffusion), or None when ``text`` is no JSON object/array."""
    if not isinstance(text, str) or not text[:1] in "{[" or not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _values_differ(a, b, rtol: float, atol: float) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(_values_differ(a[k], b[k], rtol, atol) for k in a)
    ja, jb = _json(a), _json(b)
    if ja is not None and jb is not None:  # numbers inside JSON text get the same tolerance
        return _values_differ(ja, jb, rtol, atol)
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return True
    if a.dtype.kind in "OUSb" or b.dtype.kind in "OUSb":
        return not np.array_equal(a, b)
    return not np.allclose(a.astype(float), b.astype(float), rtol=rtol, atol=atol, equal_nan=True)


def _structures_differ(a: Crystal, b: Crystal, atol: float) -> bool:
    """Species, cell and Cartesian positions as stored, within ``atol`` [Å] (no relative tolerance)."""
    return (a.numbers.shape != b.numbers.shape or (a.numbers != b.numbers).any()
            or not np.allclose(a.cell, b.cell, rtol=0.0, atol=atol)
            or not np.allclose(a.positions, b.positions, rtol=0.0, atol=atol))


def compare_groups(a: ResultStore, b: ResultStore, rtol: float, atol: float,
                   structures_atol: float | None = None) -> list[str]:
    """Every difference between the per-candidate rows of ``a`` and ``b``, one line each."""
    out = []
    groups_a, groups_b = set(a.groups()), set(b.groups())
    out += [f"{g}: only in {a.path.name}" for g in sorted(groups_a - groups_b)]
    out += [f"{g}: only in {b.path.name}" for g in sorted(groups_b - groups_a)]
    for g in sorted(groups_a & groups_b):
        ids_a, ids_b = a.ids(g), b.ids(g)
        if len(set(ids_a)) != len(ids_a) or len(set(ids_b)) != len(ids_b):
            out.append(f"{g}: repeated ids")
        only_a, only_b = sorted(set(ids_a) - set(ids_b)), sorted(set(ids_b) - set(ids_a))
        if only_a or only_b:
            out.append(f"{g}: ids only in {a.path.name}: {only_a[:10]}; only in {b.path.name}: {only_b[:10]}")
        common = [i for i in ids_a if i in set(ids_b)]
        cols_a, cols_b = set(a.column_names(g)), set(b.column_names(g))
        if cols_a != cols_b:
            out.append(f"{g}: columns only in one file: {sorted(cols_a ^ cols_b)}")
        for col in sorted(cols_a & cols_b):
            va, vb = a.column_by_id(g, col), b.column_by_id(g, col)
            for cid in common:
                if _values_differ(va[cid], vb[cid], rtol, atol):
                    out.append(f"{g}/{col}[{cid}]: {va[cid]!r} != {vb[cid]!r}")
        if structures_atol is not None and a.exists(f"{g}/structure") and b.exists(f"{g}/structure"):
            sa, sb = a.crystals_by_id(g, common), b.crystals_by_id(g, common)
            for cid in common:
                if (cid in sa) != (cid in sb) or (cid in sa and _structures_differ(sa[cid], sb[cid], structures_atol)):
                    out.append(f"{g}/structure[{cid}]: differs beyond {structures_atol} Å")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Compare the per-candidate results of two run files.")
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--atol", type=float, default=1e-6)
    ap.add_argument("--structures", action="store_true", help="also compare the ragged structures")
    ap.add_argument("--atol-structure", type=float, default=1e-4, help="Å, for --structures")
    args = ap.parse_args(argv)
    with ResultStore(args.a, "r") as a, ResultStore(args.b, "r") as b:
        diffs = compare_groups(a, b, args.rtol, args.atol, args.atol_structure if args.structures else None)
        summary = {g: len(a.ids(g)) for g in sorted(set(a.groups()) & set(b.groups()))}
    for line in diffs:
        print(line)
    print(f"compared {summary} (rtol {args.rtol:g}, atol {args.atol:g}): "
          f"{len(diffs)} difference{'s' if len(diffs) != 1 else ''}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
