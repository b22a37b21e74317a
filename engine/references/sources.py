"""Where reference phases come from: the competing phases of the candidates' chemical systems, of Li–Ge–P–S
(for LGPS) and of Li–Co–O (for LiCoO2), from one of three sources behind one interface.

- ``builtin``: structures the project builds itself (:mod:`engine.references.builtin_phases`); they carry no energy, so
  they are always relaxed with the stage's uMLIP.
- ``file``: a JSON or JSON.gz list of pymatgen ``ComputedStructureEntry`` (the format of Materials Project dumps).
- ``mp_api``: the Materials Project API through ``mp-api`` (needs an API key and network); what it fetches is
  cached as a ``file`` source, one file per chemical system.

The references stage (:mod:`engine.references.stage`) relaxes what a source gives with the run's model.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
from pymatgen.core import Composition, Structure
from pymatgen.entries.computed_entries import ComputedEntry, ComputedStructureEntry

from engine.core.corrections import Correction
from engine.core.settings import local_setting, secret_setting
from engine.core.workers import WorkerError, map_isolated

log = logging.getLogger(__name__)


class SourceKind(StrEnum):
    """Where the reference phases come from."""
    builtin = "builtin"  # the phases that ship with the engine (engine/references/builtin_phases.py)
    file = "file"  # a JSON / JSON.gz list of ComputedStructureEntry dicts
    mp_api = "mp_api"  # the Materials Project (online)


class EnergySource(StrEnum):
    """Which energies the reference phases get."""
    model = "model"  # relaxed with the run's model
    source = "source"  # the source's own energies


class PrototypeEdges(StrEnum):
    """Which binary edges prototype completion fills."""
    candidates = "candidates"  # those of the candidates' and the partners' own chemical systems
    all = "all"  # also those that only the mixing systems (candidate + partner) have


@dataclass
class ReferencesSettings:
    """Reference phases and their energies (``conf/references/``)."""
    source: SourceKind = SourceKind.builtin
    path: str | None = None  # file: a JSON / JSON.gz list of ComputedStructureEntry dicts
    api_key: str | None = secret_setting()  # mp_api: Materials Project API key (or MP_API_KEY); never stored
    thermo_type: str = "GGA_GGA+U"  # mp_api: MP's thermodynamic data set
    # relaxed references (references/) and MP downloads (mp_api/)
    cache_dir: str = local_setting("${oc.env:COATING_CACHE,'~/.cache/coating-engine'}")
    energies: EnergySource = EnergySource.model
    correction: Correction = Correction.mp2020
    # builtin: complete every binary edge with charge-balanced prototypes (engine/prototypes.py), relaxed like the rest
    prototypes: bool = True
    # which edges: candidates = those of the candidates' and the partners' own chemical systems; all = also those
    # that only the mixing systems (candidate + partner) have
    prototype_edges: PrototypeEdges = PrototypeEdges.candidates
    # compositions whose systems always get references: the electrolyte and cathode of the thermo stage
    partners: list[str] = field(default_factory=lambda: ["${thermo.electrolyte}", "${thermo.cathode}"])
    # eV/atom against the model's own elements: a relaxed phase below it has fallen into a hole of the model (no known
    # solid lies below about -4.5 eV/atom; TensorNet-MatPES-PBE's Ge3P4 prototype collapsed to -11 eV/atom) and would
    # wreck every hull it enters; it is kept out with its reason
    min_formation_energy: float = -5.0


class ReferenceUnavailableError(RuntimeError):
    """The configured reference source cannot be used here (missing file, package, key or network)."""


@dataclass
class ReferencePhase:
    id: str
    structure: Structure | None
    source: str
    entry: ComputedEntry | None = None  # the source's own (e.g. DFT) energy; None for builtin phases

    @property
    def elements(self) -> set[str]:
        comp = self.entry.composition if self.entry is not None else self.structure.composition
        return {el.symbol for el in comp.elements}


class ReferenceSource:
    """Where reference phases come from. ``phases(elements)``: every phase whose elements lie in ``elements``."""

    name = "abstract"
    has_energies = False  # whether phases carry the source's own energies (``energies: source``)

    def phases(self, elements: Iterable[str]) -> list[ReferencePhase]:
        raise NotImplementedError


class BuiltinReferences(ReferenceSource):
    name = "builtin"

    def __init__(self):
        self._built: dict[str, Structure] = {}

    def prepare(self, systems: Iterable[Iterable[str]], workers: int = 1) -> None:
        """Build every built-in phase of ``systems`` not built yet, one phase per host worker (some are ordered by
        an electrostatic search of seconds); a phase whose construction fails is left out with a warning."""
        from engine.references.builtin_phases import BUILTIN, build_builtin

        wanted = {i for i, phase in enumerate(BUILTIN) for system in systems
                  if phase.elements <= set(system) and phase.id not in self._built}
        order = sorted(wanted)
        for i, built in zip(order, map_isolated(build_builtin, order, workers)):
            if isinstance(built, WorkerError):
                log.warning("built-in reference %s could not be built: %s", BUILTIN[i].id, built)
            else:
                self._built[BUILTIN[i].id] = built

    def phases(self, elements: Iterable[str]) -> list[ReferencePhase]:
        from engine.references.builtin_phases import BUILTIN

        allowed = set(elements)
        self.prepare([allowed])
        return [ReferencePhase(phase.id, self._built[phase.id].copy(), "builtin") for phase in BUILTIN
                if phase.elements <= allowed and phase.id in self._built]


def read_entries(path: str | Path) -> list[ComputedEntry]:
    """A JSON / JSON.gz list of pymatgen entry dicts. Keys outside the entry's own schema (MP dumps add
    ``e_above_hull``, ``is_stable``, ``e_form_per_atom``) are kept in ``entry.data``."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceUnavailableError(f"reference file {path} not found")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        raw = json.load(fh)
    if isinstance(raw, dict):  # {"entries": [...]} as some tools write it
        raw = raw.get("entries", list(raw.values()))
    entries = []
    for d in raw:
        cls = ComputedStructureEntry if "structure" in d else ComputedEntry
        entry = cls.from_dict(d)
        for key in ("e_above_hull", "is_stable", "e_form_per_atom"):
            if key in d:
                entry.data[key] = d[key]
        entries.append(entry)
    return entries


class FileReferences(ReferenceSource):
    name = "file"
    has_energies = True

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._entries: list[ComputedEntry] | None = None

    def entries(self) -> list[ComputedEntry]:
        if self._entries is None:
            self._entries = read_entries(self.path)
        return self._entries

    def phases(self, elements: Iterable[str]) -> list[ReferencePhase]:
        allowed = set(elements)
        out = []
        for i, e in enumerate(self.entries()):
            if {el.symbol for el in e.composition.elements} <= allowed:
                structure = getattr(e, "structure", None)
                out.append(ReferencePhase(str(e.entry_id or f"{self.path.name}:{i}"), structure,
                                          f"file:{self.path.name}", e))
        return out


class MPAPIReferences(ReferenceSource):
    """Materials Project entries of a chemical system (all its subsystems included) through ``mp-api``, with
    the thermodynamic data set ``thermo_type`` (default GGA_GGA+U, the one MP2020 corrections belong to)."""

    name = "mp_api"
    has_energies = True

    def __init__(self, cache_dir: str | Path, api_key: str | None = None, thermo_type: str = "GGA_GGA+U",
                 client_factory: Callable | None = None):
        self.cache_dir = Path(cache_dir).expanduser()
        self.api_key = api_key or os.environ.get("MP_API_KEY")
        self.thermo_type = thermo_type
        self._client_factory = client_factory
        self._files: dict[str, FileReferences] = {}

    def cache_file(self, elements: Iterable[str]) -> Path:
        return self.cache_dir / f"mp-{self.thermo_type}-{'-'.join(sorted(set(elements)))}.json.gz"

    def _client(self):
        if self._client_factory is not None:
            return self._client_factory(self.api_key)
        if not self.api_key:
            raise ReferenceUnavailableError(
                "references=mp_api needs a Materials Project API key: set MP_API_KEY or references.api_key "
                "(https://next-gen.materialsproject.org/api), or use references=file / references=builtin")
        try:
            from mp_api.client import MPRester
        except ImportError as exc:
            raise ReferenceUnavailableError("references=mp_api needs the mp-api package: pip install mp-api") from exc
        return MPRester(self.api_key)

    def fetch(self, elements: Iterable[str]) -> Path:
        """Download the entries of the chemical system into the cache (once) and return the cache file."""
        elements = sorted(set(elements))
        path = self.cache_file(elements)
        if path.is_file():
            return path
        try:
            with self._client() as mpr:
                entries = mpr.get_entries_in_chemsys(elements,
                                                     additional_criteria={"thermo_types": [self.thermo_type]})
        except ReferenceUnavailableError:
            raise
        except Exception as exc:  # network, authentication, API errors
            raise ReferenceUnavailableError(f"Materials Project query for {'-'.join(elements)} failed: {exc}") from exc
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with gzip.open(tmp, "wt") as fh:
            json.dump([e.as_dict() for e in entries], fh)
        tmp.replace(path)  # a killed download never leaves a half-written cache
        return path

    def phases(self, elements: Iterable[str]) -> list[ReferencePhase]:
        path = self.fetch(elements)
        if path not in self._files:
            self._files[path] = FileReferences(path)
        out = self._files[path].phases(elements)
        for p in out:
            p.source = "mp_api"
        return out


def reference_source(cfg) -> ReferenceSource:
    """The source named by a ``conf/references/*.yaml`` config."""
    kind = cfg.source
    if kind == "builtin":
        return BuiltinReferences()
    if kind == "file":
        if not cfg.get("path"):
            raise ReferenceUnavailableError("references=file needs references.path=FILE.json[.gz]")
        return FileReferences(Path(cfg.path).expanduser())
    if kind == "mp_api":
        return MPAPIReferences(Path(cfg.cache_dir).expanduser() / "mp_api", cfg.get("api_key"),
                               cfg.get("thermo_type", "GGA_GGA+U"))
    raise ReferenceUnavailableError(f"unknown reference source {kind!r}; use builtin, file or mp_api")


def prototype_phases(edges: Iterable[frozenset[str]], known: Iterable[ReferencePhase],
                     workers: int = 1) -> list[ReferencePhase]:
    """The prototype phases of ``edges`` (:mod:`engine.references.prototypes`; one edge per host worker), less those
    a ``known`` phase already is (same formula in the same structure type, by name). An edge whose construction
    fails is left out with a warning."""
    from engine.references.prototypes import phases_of_edge

    have = {p.id.split(":", 1)[1] for p in known}
    edges = [sorted(edge) for edge in sorted(edges, key=sorted)]
    out = []
    for edge, built in zip(edges, map_isolated(phases_of_edge, edges, workers)):
        if isinstance(built, WorkerError):
            log.warning("prototype phases of %s could not be built: %s", "-".join(edge), built)
            continue
        for p in built:
            if p.id.split(":", 1)[1] not in have:
                out.append(ReferencePhase(p.id, p.structure.copy(), "prototype"))
    return out


def collect_phases(source: ReferenceSource, systems: Iterable[Iterable[str]], workers: int = 1
                   ) -> list[ReferencePhase]:
    """Every phase of every chemical system in ``systems``, each once (built on ``workers`` host workers where the
    source builds its phases)."""
    systems = {frozenset(s) for s in systems}
    if isinstance(source, BuiltinReferences):
        source.prepare(systems, workers)
    seen: dict[str, ReferencePhase] = {}
    for system in sorted(systems, key=sorted):
        for p in source.phases(system):
            seen.setdefault(p.id, p)
    return list(seen.values())


def stored_references(store) -> list[ComputedEntry]:
    """Entries [eV, corrected] of the usable ``references/`` rows, in their reduced compositions."""
    if not store.has("references"):
        raise ReferenceUnavailableError("the thermo stage needs the references stage before it (stages=[..., relax, "
                                        "references, thermo])")
    entries = []
    for pid, formula, e in zip(store.ids("references"), store.column("references", "formula"),
                               store.column("references", "corrected_energy_per_atom")):
        if np.isfinite(e):
            comp = Composition(formula)
            entries.append(ComputedEntry(comp, float(e) * comp.num_atoms, entry_id=pid))
    return entries
