"""Candidate structures in and out: file readers, and packing lists of structures into one batched
torch-sim ``SimState`` (and back) with their order and ids preserved.

A reader never raises on a bad entry: it yields a :class:`Candidate` whose ``structure`` is ``None`` and
whose ``reason`` says what went wrong, so the run records it and goes on.
"""

from __future__ import annotations

import gzip
import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch_sim as ts
from omegaconf import MISSING
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor


@dataclass
class CandidatesSettings:
    """What every candidate source shares (``conf/candidates/``; each source's settings extend it)."""
    source: str = MISSING  # builtin | files | wyformer
    min_distance: float = 0.7  # Å; validity requires d_min > min_distance (periodic images included)


@dataclass
class Candidate:
    id: str
    source: str
    structure: Structure | None
    reason: str = ""


def short_error(exc: BaseException) -> str:
    """One line naming an exception, for a recorded reason."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


def spacegroup_number(structure: Structure, symprec: float = 0.1) -> int:
    """spglib's space-group number at ``symprec`` [Å] (0 when spglib finds none)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return int(SpacegroupAnalyzer(structure, symprec=symprec).get_space_group_number())
    except Exception:  # noqa: BLE001
        return 0


def read_cif(path: Path) -> Candidate:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_file(path)
        if len(structure) == 0:
            raise ValueError("no atoms")
        return Candidate(path.stem, str(path), structure)
    except Exception as exc:  # noqa: BLE001 - any parse failure becomes a recorded reason
        return Candidate(path.stem, str(path), None, f"unreadable: {short_error(exc)}")


def read_cif_folder(folder: Path) -> Iterator[Candidate]:
    yield from (read_cif(p) for p in sorted(folder.glob("*.cif")))


def read_extxyz(path: Path) -> Iterator[Candidate]:
    from ase.io import read

    try:
        frames = read(path, index=":")
    except Exception as exc:  # noqa: BLE001
        yield Candidate(path.stem, str(path), None, f"unreadable: {short_error(exc)}")
        return
    for i, atoms in enumerate(frames):
        cid = str(atoms.info.get("id", f"{path.stem}-{i}"))
        try:
            yield Candidate(cid, f"{path}@{i}", AseAtomsAdaptor.get_structure(atoms))
        except Exception as exc:  # noqa: BLE001 - e.g. a frame without a cell
            yield Candidate(cid, f"{path}@{i}", None, f"unreadable: {short_error(exc)}")


def read_pymatgen_json(path: Path) -> Iterator[Candidate]:
    """A JSON (or .json.gz) list of ``Structure`` dicts or of ``ComputedStructureEntry`` dicts."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            items = json.load(fh)
        if isinstance(items, dict):
            items = [items]
    except Exception as exc:  # noqa: BLE001
        yield Candidate(path.stem, str(path), None, f"unreadable: {short_error(exc)}")
        return
    for i, item in enumerate(items):
        cid = str(item.get("entry_id") or item.get("properties", {}).get("id") or f"{path.stem}-{i}")
        try:
            structure = Structure.from_dict(item["structure"] if "structure" in item else item)
            yield Candidate(cid, f"{path}@{i}", structure)
        except Exception as exc:  # noqa: BLE001
            yield Candidate(cid, f"{path}@{i}", None, f"unreadable: {short_error(exc)}")


def read_candidates(path: str | Path) -> list[Candidate]:
    """Dispatch on what ``path`` is: a folder of CIFs, an (ext)xyz file, a pymatgen JSON list, or a CIF."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"candidates path {path} does not exist")
    if path.is_dir():
        found = list(read_cif_folder(path))
    elif path.name.endswith((".xyz", ".extxyz")):
        found = list(read_extxyz(path))
    elif path.name.endswith((".json", ".json.gz")):
        found = list(read_pymatgen_json(path))
    elif path.suffix == ".cif":
        found = [read_cif(path)]
    else:
        raise ValueError(f"don't know how to read candidates from {path} (folder of CIFs, .extxyz, .json)")
    return _dedupe_ids(found)


def _dedupe_ids(cands: list[Candidate]) -> list[Candidate]:
    seen: dict[str, int] = {}
    for c in cands:
        n = seen.get(c.id, 0)
        seen[c.id] = n + 1
        if n:
            c.id = f"{c.id}#{n}"
    return cands


# ---- batched state ----------------------------------------------------------------------------
def pack(structures: Sequence[Structure], device: torch.device | str = "cpu",
         dtype: torch.dtype = torch.float64) -> ts.SimState:
    """One batched ``SimState``; system ``i`` is ``structures[i]``."""
    return ts.io.structures_to_state(list(structures), device=torch.device(device), dtype=dtype)


def unpack(state: ts.SimState) -> list[Structure]:
    """Structures of a batched state in system order (the inverse of :func:`pack`)."""
    return ts.io.state_to_structures(state)
