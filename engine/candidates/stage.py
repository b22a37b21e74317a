"""Candidates stage: structures from files, from the built-in symmetric sampler (:mod:`engine.candidates.sampler`) or from
WyFormer (:mod:`engine.candidates.wyformer`), then validity; with ``shard.count > 1`` only this shard's slice of them.

Shards: a candidate belongs to shard ``int(sha256(key)) % count``, its key being its reduced formula and space group
(its id when it has no space group: unreadable or no screenable crystal). Every shard generates or reads the same
candidates and keeps its own slice, so the slices are disjoint, together complete and balanced, and independent of
the order of the inputs; and since structures the novelty stage could match share formula and space group, they
land in the same shard, so uniqueness holds across shards as within one run.

Validity: the shortest interatomic distance with periodic images, computed batched, must exceed
``min_distance`` [Å] (0.7 Å in the reference pipeline).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from omegaconf import MISSING
from pymatgen.core import Structure

from engine.candidates.readers import Candidate, CandidatesSettings, read_candidates
from engine.candidates.sampler import (
    SEED_ALLOWED_ELEMENTS,
    check_csx,
    draw_chemical_systems,
    sample_symmetric_crystals,
)
from engine.candidates.wyformer import generate_candidates
from engine.core.rows import NAN, Row, Status
from engine.core.structures import pack, spacegroup_number
from kernels.distances import min_interatomic_distance

log = logging.getLogger(__name__)

SEED_SYSTEMS = [["Li", "Al", "F"], ["Li", "Y", "Cl"], ["Li", "Zr", "Cl"], ["Li", "Mg", "Cl"], ["Li", "Ca", "I"],
                ["Li", "S", "Br"]]


@dataclass
class BuiltinCandidates(CandidatesSettings):
    """The offline sampler of symmetric Li-X-Y crystals (:mod:`engine.candidates.sampler`)."""
    source: str = "builtin"
    chemical_systems: list[list[str]] | None = field(default_factory=lambda: [list(s) for s in SEED_SYSTEMS])
    required_elements: list[str] = field(default_factory=lambda: ["Li"])
    allowed_elements: list[str] = field(default_factory=lambda: list(SEED_ALLOWED_ELEMENTS))
    n_elements: int | None = 3  # the systems (given or drawn) must have exactly this many elements (null: any)
    n_systems: int = 6  # systems drawn when chemical_systems is null
    per_system: int = 2
    space_groups: list[int] = field(default_factory=lambda: [2, 12, 14, 15, 62, 63, 148, 166, 194, 225])
    max_atoms: int = 12  # atoms per cell at most
    max_tries: int | None = None  # pyxtal placements tried per system (null: max(200, 10 * per_system))
    seed: int = 0


@dataclass
class FilesCandidates(CandidatesSettings):
    """A folder (every file in it), or one CIF, POSCAR/CONTCAR, (ext)xyz or pymatgen JSON file."""
    source: str = "files"
    path: str = MISSING
    max_atoms_file: int = 500  # larger structures are recorded as errors


@dataclass
class ShardSettings:
    """This process's slice of a screen spread over ``count`` processes (``shard`` in the config)."""
    index: int = 0  # 0 .. count-1
    count: int = 1

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard.index {self.index} is outside 0 .. shard.count-1 ({self.count})")


def shard_of(key: str, count: int) -> int:
    """The shard (0 .. count-1) of a candidate key: a stable hash, the same in every process and Python version."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:16], 16) % count


@dataclass
class CandidateRow(Row):
    """One candidate as read or generated, with its validity."""
    source: str = ""  # file (and frame) or generator the structure came from
    formula: str = ""  # reduced formula ("" when unreadable)
    spacegroup: int = 0  # spglib at 0.1 Å (0: none found or unreadable)
    natoms: int = 0
    d_min: float = NAN  # Å, shortest interatomic distance with periodic images
    structure: Structure | None = None  # as read or generated


def load_candidates(cfg, device="cpu") -> list[Candidate]:
    """The configured source's candidates, in input order (unreadable ones with ``structure=None`` and a reason)."""
    if cfg.source == "wyformer":
        return generate_candidates(cfg, device)
    if cfg.source == "files":
        return read_candidates(cfg.path)
    if cfg.source == "builtin":
        required, allowed, n_elements = list(cfg.required_elements), list(cfg.allowed_elements), cfg.get("n_elements")
        systems = [list(s) for s in cfg.get("chemical_systems") or draw_chemical_systems(
            required, allowed, int(cfg.n_systems), int(cfg.seed), int(n_elements or 3))]
        check_csx(systems, required, allowed, n_elements)
        tries = cfg.get("max_tries") or max(200, 10 * int(cfg.per_system))
        return sample_symmetric_crystals(systems, int(cfg.per_system), [int(g) for g in cfg.space_groups],
                                         int(cfg.max_atoms), int(cfg.seed), max_tries=int(tries))
    raise ValueError(f"unknown candidates.source {cfg.source!r} (builtin | files | wyformer)")


def min_distances(structures, device="cpu") -> np.ndarray:
    """d_min [Å], shape (n_structures,), all evaluated in one batched neighbour-list call."""
    if not structures:
        return np.zeros(0)
    state = pack(structures, device=device, dtype=torch.float64)
    pbc = state.pbc if torch.is_tensor(state.pbc) else torch.tensor([state.pbc] * 3)
    pbc = pbc.expand(state.n_systems, 3) if pbc.dim() == 1 else pbc
    d = min_interatomic_distance(state.positions, state.row_vector_cell, pbc, state.system_idx)
    return d.cpu().numpy()


def input_problem(structure: Structure, limits) -> str:
    """Why ``structure`` is no screenable crystal ("" when it is): non-finite numbers, a degenerate, vacuum-filled
    or absurdly long cell, too many atoms. ``limits`` has ``min_volume_per_atom``, ``max_volume_per_atom`` [Å³],
    ``max_cell_length`` [Å] and optionally ``max_atoms_file``."""
    if not structure.is_ordered:
        i, site = next((i, site) for i, site in enumerate(structure) if not site.is_ordered)
        species = "".join(f"{sp}{occ:g}" for sp, occ in site.species.items())
        return (f"disordered: site {i} {species}; order it first (e.g. pymatgen's "
                "OrderDisorderedStructureTransformation)")
    matrix = structure.lattice.matrix
    if not (np.isfinite(matrix).all() and np.isfinite(structure.cart_coords).all()):
        return "non-finite coordinates or cell"
    per_atom = abs(np.linalg.det(matrix)) / len(structure)
    if not per_atom > limits.min_volume_per_atom:
        return f"degenerate cell: {per_atom:.3g} Å³/atom <= {limits.min_volume_per_atom:g}"
    if per_atom > limits.max_volume_per_atom:
        return f"mostly vacuum: {per_atom:.0f} Å³/atom > {limits.max_volume_per_atom:g}"
    longest = float(np.linalg.norm(matrix, axis=1).max())
    if longest > limits.max_cell_length:
        return f"absurd cell: a lattice vector of {longest:.0f} Å > {limits.max_cell_length:g} Å"
    max_atoms = getattr(limits, "max_atoms_file", None)
    if max_atoms and len(structure) > max_atoms:
        return f"too many atoms: {len(structure)} > {max_atoms} (candidates.max_atoms_file)"
    return ""


def validity(candidates: list[Candidate], min_distance: float, device="cpu",
             limits=None) -> tuple[list[Status], list[str], np.ndarray]:
    """Status, reason and d_min [Å] per candidate; unreadable candidates keep their reading error, and with
    ``limits`` (:func:`input_problem`) a structure that is no screenable crystal is an error with the reason."""
    problems = [c.reason if c.structure is None else input_problem(c.structure, limits) if limits else ""
                for c in candidates]
    sane = [i for i, c in enumerate(candidates) if c.structure is not None and not problems[i]]
    d_min = np.full(len(candidates), np.nan)
    d_min[sane] = min_distances([candidates[i].structure for i in sane], device)
    status, reason = [], []
    for c, d, problem in zip(candidates, d_min, problems):
        if c.structure is None or problem:
            status.append(Status.ERROR), reason.append(problem)
        elif not d > min_distance:
            status.append(Status.FAIL), reason.append(f"d_min: {d:.3f} Å <= {min_distance} Å")
        else:
            status.append(Status.PASS), reason.append("")
    return status, reason, d_min


def run_stage(run) -> None:
    """Write every candidate (readable or not) with its validity verdict; a rerun keeps what is there."""
    if run.store.has("candidates"):
        log.info("candidates already in %s; resuming", run.store.path)
        return
    cfg, shard = run.cfg.candidates, run.cfg.shard
    cands = load_candidates(cfg, run.device)
    status, reason, d_min = validity(cands, float(cfg.min_distance), run.device, limits=cfg)
    rows = []
    for c, st, why, d in zip(cands, status, reason, d_min):
        sane = c.structure is not None and st != Status.ERROR  # spglib can crash on non-finite input
        kept = c.structure if c.structure is not None and c.structure.is_ordered else None  # the file keeps sites
        rows.append(CandidateRow(c.id, st, why, source=c.source, structure=kept, d_min=float(d),
                                 formula=c.structure.composition.reduced_formula if c.structure else "",
                                 spacegroup=spacegroup_number(c.structure) if sane else 0,
                                 natoms=len(c.structure) if c.structure else 0))
    if shard.count > 1:
        rows = [r for r in rows if shard_of(f"{r.formula}:{r.spacegroup}" if r.spacegroup else r.id,
                                            shard.count) == shard.index]
        log.info("shard %d/%d: %d candidates", shard.index, shard.count, len(rows))
    with run.progress("candidates", len(rows)) as bar:
        run.store.append_rows("candidates", rows)
        bar.update(len(rows))


def funnel(store, cfg) -> list[tuple[str, set[str] | None, str]]:
    """The report\'s funnel steps: (criterion, ids passing it or None for this stage\'s pass rows, note)."""
    return [(f"valid: d_min > {cfg.candidates.min_distance} Å", None, "")]
