"""Coordination environments of cation sites and how typical they are of the reference phases.

Neighbours are pymatgen's ``CrystalNN`` (Pan et al., Inorg. Chem. 60, 1590 (2021)) between cations and anions of
the oxidation-state-decorated structure (an ion whose radius pymatgen does not tabulate gets its covalent or atomic
radius, as CrystalNN warns, silenced here: hundreds of lines in a screen); the geometry of a site is the motif of its
coordination number whose local structure order parameter (Zimmermann & Jain, RSC Adv. 10, 6063 (2020); pymatgen's
``NearNeighbors.get_local_order_parameters``) is largest: "octahedral", "tetrahedral", "square co-planar",
"trigonal planar", ...

The reference distribution counts, for each (cation, anions) pair, the reference phases in which each
(coordination number, geometry) occurs. A candidate site's *typicality* is the fraction of the reference phases with
its (cation, anions) pair that show its environment; the candidate's coordination score is the mean typicality of
its cation sites, weighted by their multiplicity (1: every site has an environment every reference with its pair
shows; 0: no site has an environment any reference shows).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from pymatgen.analysis.local_env import CN_OPT_PARAMS, CrystalNN, LocalStructOrderParams
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

HALOGENS = frozenset({"F", "Cl", "Br", "I"})
NO_ANION = "no anion neighbour"  # a cation none of whose Voronoi faces is shared with an anion (CrystalNN finds none)
MOTIFS = {int(k): v for k, v in CN_OPT_PARAMS.items()}  # coordination number -> {motif: (order parameter, params)}


@dataclass(frozen=True)
class Environment:
    """One cation site's coordination: its element, the anion elements around it ("O", "Cl,O"), coordination
    number and geometry; ``order`` is the geometry's order parameter (1: ideal); ``multiplicity`` the number of
    symmetry-equivalent sites in the cell."""
    cation: str
    anions: str
    cn: int
    geometry: str
    order: float = 1.0
    multiplicity: int = 1

    @property
    def key(self) -> tuple[str, str, int, str]:
        return self.cation, self.anions, self.cn, self.geometry

    def label(self) -> str:
        return f"{self.cation}-{self.anions} {self.cn}-fold {self.geometry}"


def cation_environments(structure: Structure, symprec: float = 0.1) -> list[Environment]:
    """The environment of every symmetry-distinct cation site of an oxidation-state-decorated ``structure``."""
    nn = CrystalNN(cation_anion=True)
    try:
        classes = SpacegroupAnalyzer(structure, symprec=symprec).get_symmetrized_structure().equivalent_indices
    except Exception:  # noqa: BLE001 - spglib refuses some distorted cells: every site is then its own class
        classes = [[i] for i in range(len(structure))]
    out = []
    for members in classes:
        i = members[0]
        if getattr(structure[i].specie, "oxi_state", 0) <= 0:
            continue
        try:
            with warnings.catch_warnings():  # an ion without a tabulated radius gets its atomic one: said once here
                warnings.filterwarnings("ignore", message="CrystalNN: cannot locate an appropriate radius")
                neighbours = nn.get_nn_info(structure, i)
        except ValueError:  # pymatgen's max() of an empty list: no anion shares a face of the cation's Voronoi cell
            neighbours = []
        if not neighbours:
            out.append(Environment(structure[i].specie.symbol, "-", 0, NO_ANION, 1.0, len(members)))
            continue
        anions = ",".join(sorted({n["site"].specie.symbol for n in neighbours}))
        try:
            orders = order_parameters(structure, i, neighbours)
        except ValueError:  # pymatgen's order parameters raise max() of an empty list for some neighbour shells
            orders = None
        orders = {k: v for k, v in (orders or {}).items() if v is not None}
        geometry, order = max(orders.items(), key=lambda kv: kv[1]) if orders else (f"{len(neighbours)}-coordinate", 1.0)
        out.append(Environment(structure[i].specie.symbol, anions, len(neighbours), geometry, float(order),
                               len(members)))
    return out


def order_parameters(structure: Structure, i: int, neighbours: list[dict]) -> dict[str, float] | None:
    """pymatgen's ``NearNeighbors.get_local_order_parameters`` of site ``i`` from its ``get_nn_info`` answer, which
    pymatgen would compute twice more (CrystalNN is most of this stage's time): the order parameters of every motif
    of the site's coordination number, None for a number without motifs."""
    cn = len(neighbours)
    motifs = MOTIFS.get(cn)
    if motifs is None:
        return None
    names = list(motifs)
    lsops = LocalStructOrderParams([motifs[m][0] for m in names],
                                   parameters=[motifs[m][1] if len(motifs[m]) > 1 else None for m in names])
    sites = [structure[i], *(n["site"] for n in neighbours)]
    return dict(zip(names, lsops.get_order_parameters(sites, 0, indices_neighs=list(range(1, cn + 1)))))


@dataclass
class ReferenceEnvironments:
    """How many reference phases show each cation environment (Counter per (cation, anions) pair)."""
    phases: dict[tuple[str, str], int] = field(default_factory=Counter)  # (cation, anions) -> phases with it
    shown: dict[tuple[str, str, int, str], int] = field(default_factory=Counter)  # environment key -> phases
    cns: dict[tuple[str, str], set[int]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def of(cls, environments_per_phase: Iterable[list[Environment]]) -> ReferenceEnvironments:
        ref = cls()
        for envs in environments_per_phase:
            for pair in {(e.cation, e.anions) for e in envs}:
                ref.phases[pair] += 1
            for key in {e.key for e in envs}:
                ref.shown[key] += 1
            for e in envs:
                ref.cns[(e.cation, e.anions)].add(e.cn)
        return ref

    def typicality(self, env: Environment) -> float:
        """Fraction of the reference phases with ``env``'s (cation, anions) pair that show ``env``; NaN when no
        reference phase has the pair."""
        n = self.phases.get((env.cation, env.anions), 0)
        return self.shown.get(env.key, 0) / n if n else float("nan")


@dataclass
class CoordinationVerdict:
    score: float  # multiplicity-weighted mean typicality of the cation sites (NaN: no reference has any of its pairs)
    flags: list[str]
    summary: str  # every environment, "Li-O 4-fold tetrahedral x8; ..."


def judge_coordination(envs: list[Environment], reference: ReferenceEnvironments, min_typicality: float,
                       cn_gap: int) -> CoordinationVerdict:
    """Flags: a cation with no anion neighbour; square-planar Li; trigonal-planar Li among halides; a cation whose
    coordination number differs by ``cn_gap`` or more from every one its (cation, anions) pair has in the references;
    an environment shown by fewer than ``min_typicality`` of the reference phases with its pair."""
    flags: list[str] = []
    typical = []
    for e in envs:
        if e.geometry == NO_ANION:
            flags.append(f"{e.cation} with no anion neighbour (x{e.multiplicity})")
        if e.cation == "Li" and e.cn == 4 and e.geometry == "square co-planar":
            flags.append(f"square-planar Li ({e.anions}, order {e.order:.2f})")
        if e.cation == "Li" and e.cn == 3 and e.geometry == "trigonal planar" and set(e.anions.split(",")) & HALOGENS:
            flags.append(f"trigonal-planar Li with halide ({e.anions}, order {e.order:.2f})")
        ref_cns = reference.cns.get((e.cation, e.anions))
        if ref_cns and min(abs(e.cn - c) for c in ref_cns) >= cn_gap:
            flags.append(f"{e.cation}-{e.anions} CN {e.cn}, references {'/'.join(map(str, sorted(ref_cns)))}")
        t = reference.typicality(e)
        typical.append(t)
        if not math.isnan(t) and t < min_typicality:
            flags.append(f"{e.label()} in {t:.0%} of the reference phases with {e.cation}-{e.anions}")
    known = [(t, e.multiplicity) for t, e in zip(typical, envs) if not math.isnan(t)]
    score = sum(t * m for t, m in known) / sum(m for _, m in known) if known else float("nan")
    summary = "; ".join(f"{e.label()} x{e.multiplicity}" for e in envs)
    return CoordinationVerdict(score, list(dict.fromkeys(flags)), summary)
