"""Candidate structures from files: CIF (every data block), POSCAR, extended XYZ, pymatgen JSON; folders read
recursively, each file named by its path.

A reader never raises on a bad entry: it yields a :class:`Candidate` whose ``structure`` is ``None`` and
whose ``reason`` says what went wrong, so the run records it and goes on.
"""

from __future__ import annotations

import gzip
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from engine.core.rows import short_error


@dataclass
class CandidatesSettings:
    """What every candidate source shares (``conf/candidates/``; each source's settings extend it)."""
    source: str = MISSING  # builtin | files | wyformer
    min_distance: float = 0.7  # Å; validity requires d_min > min_distance (periodic images included)
    min_volume_per_atom: float = 1.0  # Å³; a cell this small per atom is degenerate
    max_volume_per_atom: float = 100.0  # Å³; above it the cell is mostly vacuum (solids: about 5-50 Å³/atom)
    max_cell_length: float = 200.0  # Å; a longer lattice vector is no bulk crystal cell


@dataclass
class Candidate:
    id: str
    source: str
    structure: Structure | None
    reason: str = ""


POSCAR_NAMES = ("POSCAR", "CONTCAR")


def _read_cif_block(text: str) -> Structure:
    """The structure of one CIF data block (as ``Structure.from_file`` reads it); its atoms must add up to the formula
    the block declares (``_chemical_formula_sum``, when it declares one): an atom loop cut short would otherwise pass
    as another material. Raises with a reason a person can act on."""
    from pymatgen.core import Composition
    from pymatgen.io.cif import CifParser

    parser = CifParser.from_str(text)
    try:
        structure = parser.parse_structures(primitive=False)[0]
    except ValueError:
        said = " ".join(parser.warnings)
        if "exceeded tolerance" in said or "sum to > 1" in said:
            raise ValueError("coincident atoms: sites on one position add up to an occupancy above 1 "
                             "(two atoms at the same place?)") from None
        raise ValueError(f"no structure in the block ({parser.warnings[-1] if parser.warnings else 'nothing parsed'})"
                         ) from None
    sums = [b["_chemical_formula_sum"] for b in parser.as_dict().values() if b.get("_chemical_formula_sum")]
    if sums and structure.is_ordered:
        declared = Composition(str(sums[0]).replace("'", "")).reduced_formula
        read = structure.composition.reduced_formula
        if declared != read:
            raise ValueError(f"the atoms read make {read}, the file declares {declared} (atom loop cut?)")
    return structure


def read_cif(path: Path, cid: str) -> list[Candidate]:
    """One candidate per data block of a CIF (ids ``<cid>:<block>`` when it has more than one)."""
    from pymatgen.io.cif import CifFile

    try:
        if path.stat().st_size == 0:
            raise ValueError("empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blocks = list(CifFile.from_file(path).data.values())
        if not blocks:
            raise ValueError("no data block")
    except Exception as exc:  # noqa: BLE001 - any parse failure becomes a recorded reason
        return [Candidate(cid, str(path), None, f"unreadable: {_decoded(exc)}")]
    out = []
    for block in blocks:
        bid = cid if len(blocks) == 1 else f"{cid}:{block.header}"
        source = str(path) if len(blocks) == 1 else f"{path}@{block.header}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structure = _read_cif_block(str(block))
            if len(structure) == 0:
                raise ValueError("no atoms")
            out.append(Candidate(bid, source, structure))
        except Exception as exc:  # noqa: BLE001
            out.append(Candidate(bid, source, None, f"unreadable: {_decoded(exc)}"))
    return out


def _decoded(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not a text file in UTF-8 (byte {exc.start}: {exc.reason})"
    return short_error(exc)


def read_structure_file(path: Path, cid: str) -> Candidate:
    """One structure from a VASP POSCAR/CONTCAR (``*.vasp``, ``*.poscar``); a failure is the reason."""
    try:
        if path.stat().st_size == 0:
            raise ValueError("empty file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_file(path)
        if len(structure) == 0:
            raise ValueError("no atoms")
        return Candidate(cid, str(path), structure)
    except Exception as exc:  # noqa: BLE001 - any parse failure becomes a recorded reason
        return Candidate(cid, str(path), None, f"unreadable: {_decoded(exc)}")


STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar", ".xyz", ".extxyz", ".json", ".json.gz")


def file_id(path: Path) -> str:
    """A file's candidate id: its name without the format's suffix (``POSCAR_x``, ``CONTCAR`` and files of no
    known format keep their whole name)."""
    name = path.name.lower()
    if path.name.startswith(POSCAR_NAMES) or not name.endswith(STRUCTURE_SUFFIXES):
        return path.name
    return path.name[:-len(".json.gz")] if name.endswith(".json.gz") else path.stem


def read_file(path: Path, cid: str | None = None) -> list[Candidate]:
    """The candidates of one file, by its name: CIF (every data block), POSCAR/CONTCAR, (ext)xyz, pymatgen JSON; any
    other file gives one unreadable candidate with the reason. ``cid``: the id (default :func:`file_id`)."""
    name = path.name.lower()
    cid = cid or file_id(path)
    if path.is_symlink() and not path.exists():
        return [Candidate(cid, str(path), None, f"broken link: {path.name} -> {path.readlink()} "
                                                "(the target does not exist)")]
    if name.endswith(".cif"):
        return read_cif(path, cid)
    if name.endswith((".vasp", ".poscar")) or path.name.startswith(POSCAR_NAMES):
        return [read_structure_file(path, cid)]
    if name.endswith((".xyz", ".extxyz")):
        return list(read_extxyz(path, cid))
    if name.endswith((".json", ".json.gz")):
        return list(read_pymatgen_json(path, cid))
    return [Candidate(cid, str(path), None,
                      "unsupported format: not CIF, POSCAR/CONTCAR (.vasp), (ext)xyz or pymatgen JSON")]


def read_folder(folder: Path) -> Iterator[Candidate]:
    """Every file of ``folder`` and its sub-folders (hidden ones aside), in path order: each becomes candidates or
    gets a reason. A file in a sub-folder has the id ``sub.name``."""
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or (p.is_dir() and not p.is_symlink()):
            continue
        yield from read_file(p, ".".join([*rel.parts[:-1], file_id(p)]))


def read_extxyz(path: Path, stem: str) -> Iterator[Candidate]:
    from ase.io import read

    try:
        frames = read(path, index=":")
    except Exception as exc:  # noqa: BLE001
        yield Candidate(stem, str(path), None, f"unreadable: {_decoded(exc)}")
        return
    for i, atoms in enumerate(frames):
        cid = str(atoms.info.get("id", f"{stem}-{i}"))
        if atoms.cell.rank < 3 or not atoms.pbc.all():
            yield Candidate(cid, f"{path}@{i}", None, "not a periodic crystal: the frame has no full cell and "
                            "periodic boundaries (a molecule or a cluster?); give its Lattice in extxyz")
            continue
        try:
            yield Candidate(cid, f"{path}@{i}", AseAtomsAdaptor.get_structure(atoms))
        except Exception as exc:  # noqa: BLE001 - e.g. a frame without a cell
            yield Candidate(cid, f"{path}@{i}", None, f"unreadable: {short_error(exc)}")


def read_pymatgen_json(path: Path, stem: str) -> Iterator[Candidate]:
    """A JSON (or .json.gz) list of ``Structure`` dicts or of ``ComputedStructureEntry`` dicts."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            items = json.load(fh)
        if isinstance(items, dict):
            items = [items]
    except Exception as exc:  # noqa: BLE001
        yield Candidate(stem, str(path), None, f"unreadable: {_decoded(exc)}")
        return
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            yield Candidate(f"{stem}-{i}", f"{path}@{i}", None, "unreadable: not a Structure or entry dict")
            continue
        cid = str(item.get("entry_id") or (item.get("properties") or {}).get("id") or f"{stem}-{i}")
        try:
            structure = Structure.from_dict(item["structure"] if "structure" in item else item)
            yield Candidate(cid, f"{path}@{i}", structure)
        except Exception as exc:  # noqa: BLE001
            yield Candidate(cid, f"{path}@{i}", None, f"unreadable: {short_error(exc)}")


def read_candidates(path: str | Path) -> list[Candidate]:
    """Dispatch on what ``path`` is: a folder (every file in it), or one CIF, POSCAR/CONTCAR, (ext)xyz or pymatgen
    JSON file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"candidates path {path} does not exist")
    found = list(read_folder(path)) if path.is_dir() else read_file(path)
    return _dedupe_ids(found)


def _dedupe_ids(cands: list[Candidate]) -> list[Candidate]:
    seen: dict[str, int] = {}
    for c in cands:
        n = seen.get(c.id, 0)
        seen[c.id] = n + 1
        if n:
            c.id = f"{c.id}#{n}"
    return cands
