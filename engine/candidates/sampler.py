"""The built-in candidate sampler: charge-balanced Li-X-Y compositions in random symmetric crystals, under the
seed's CSX constraints (required elements, allowed elements, number of elements).

Compositions are balanced with common oxidation states (the test of pymatgen's ``Composition.oxi_state_guesses``)
and placed in random crystals of the configured space groups with pyxtal (Fredericks et al., Comput. Phys.
Commun. 261, 107810 (2021)). Everything is seeded per candidate (:func:`candidate_seed`): the same settings give
the same candidates, which lets a killed run resume, and a candidate does not depend on which process samples it
(host workers, shards).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import math
import warnings
from collections.abc import Sequence
from functools import cache, partial

import numpy as np
from pymatgen.core import Composition, Element

from engine.candidates.readers import Candidate
from engine.core.workers import WorkerError, map_isolated

log = logging.getLogger(__name__)

# The reference pipeline's allowed elements (CSX mode)
SEED_ALLOWED_ELEMENTS = ["H", "Li", "Be", "B", "C", "N", "O", "F", "Mg", "Al", "Si", "P", "S", "Cl", "Ca", "Sc", "Ti",
                         "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Sr", "Y", "Zr", "Nb", "Ag", "Cd", "In", "Sn", "Sb",
                         "Te", "I", "Ba", "La", "Hf", "Ta", "W", "Pb", "Bi"]


@cache
def _site_sums(symbol: str, n: int) -> frozenset[int]:
    """Every total oxidation state of ``n`` sites of an element (each site one of its ICSD, else common, states)."""
    el = Element(symbol)
    states = el.icsd_oxidation_states or el.common_oxidation_states
    return frozenset(sum(combo) for combo in itertools.combinations_with_replacement(states, n))


def charge_balanced(amounts: dict[str, int]) -> bool:
    """Balanced with common oxidation states, every Li as Li+ and the most electronegative element an anion: the
    test of pymatgen's ``Composition.oxi_state_guesses`` (the same states per site, mixed valence allowed) on the
    formula reduced to its smallest integers, without ranking every guess (100 times faster, the same answers:
    tests/candidates)."""
    divisor = math.gcd(*amounts.values())
    amounts = {s: n // divisor for s, n in amounts.items()}
    symbols = list(amounts)
    anion = max(symbols, key=lambda s: Element(s).X)  # a tie: the first in ``amounts``, as pymatgen's formula order
    options = []
    for s in symbols:
        sums = _site_sums(s, amounts[s])
        if s == "Li":
            sums = sums & {amounts[s]}
        elif s == anion:
            sums = frozenset(v for v in sums if v < 0)
        options.append(sums)
    *rest, last = options
    return any(-sum(x) in last for x in itertools.product(*rest))


def charge_balanced_compositions(elements: list[str], max_atoms: int, max_coeff: int = 6) -> list[Composition]:
    """Reduced compositions containing every element of ``elements`` (≤ ``max_atoms`` per formula unit) that
    can be charge balanced with common oxidation states."""
    found = {}
    for coeffs in itertools.product(range(1, max_coeff + 1), repeat=len(elements)):
        if sum(coeffs) > max_atoms or np.gcd.reduce(coeffs) != 1:
            continue
        amounts = dict(zip(elements, coeffs))
        if charge_balanced(amounts):
            comp = Composition(amounts)
            found[comp.reduced_formula] = comp
    return [found[k] for k in sorted(found)]


def symmetric_crystal(space_group: int, species: list[str], num_ions: list[int], seed: int, sites=None):
    """A random pyxtal crystal of ``space_group`` (on the given Wyckoff ``sites`` per species, if any), or None when
    pyxtal's result is not valid; pyxtal raises for compositions the group's Wyckoff positions cannot hold."""
    from pyxtal import pyxtal

    crystal = pyxtal()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # max_count=1: pyxtal re-seeds every attempt from the same integer, so its default ten attempts repeat one
        # placement ten times; a failing one (up to minutes in a crowded cell) would cost ten times over
        crystal.from_random(3, space_group, species, num_ions, sites=sites, random_state=seed, max_count=1,
                            tm=_atomic_tolerances())
    if not crystal.valid:
        return None
    return crystal.to_pymatgen()


@cache
def _atomic_tolerances():
    from pyxtal.tolerance import Tol_matrix

    return Tol_matrix(prototype="atomic")


LATTICE_TRIES = 5
"""Lattices pyxtal may draw for one placement. pyxtal draws up to 40 when the group leaves free parameters, each
with 10 coordinate tries; of 237 placements that succeeded (the benchmark's 240 candidates) 236 did so on their first
5 lattices, while one that failed spent 20 s on all 40 — half of the whole sampling time. Five is what pyxtal itself
gives a group without free parameters."""


class PlacementAbandoned(RuntimeError):
    """A pyxtal placement that found no valid crystal on its first :data:`LATTICE_TRIES` lattices."""


@cache
def _bounded_random_crystal():
    """pyxtal's ``random_crystal`` that gives up after :data:`LATTICE_TRIES` lattices: the same crystal, bit for
    bit, whenever pyxtal finds one within them (the random stream is read in the same order)."""
    from pyxtal.crystal import random_crystal

    class BoundedRandomCrystal(random_crystal):
        def set_crystal(self):
            self._lattices_left = LATTICE_TRIES
            super().set_crystal()

        def set_volume(self):
            if self._lattices_left == 0:
                raise PlacementAbandoned(f"no valid placement on {LATTICE_TRIES} lattices")
            self._lattices_left -= 1
            super().set_volume()

    return BoundedRandomCrystal


@contextlib.contextmanager
def _pyxtal_bounded():
    """pyxtal with two changes that keep its crystals. (1) pyxtal (1.x) merges Wyckoff positions through
    ``check_images(..., tol=...)`` without a tolerance matrix, and ``check_images`` then builds pyxtal's 119 × 119
    default matrix in Python on every call (about 10 ms, over half of the sampling time) although, given ``tol``, it
    never reads it: inside this context it gets one matrix built once. (2) A placement gives up after
    :data:`LATTICE_TRIES` lattices (:func:`_bounded_random_crystal`)."""
    import pyxtal
    import pyxtal.symmetry

    original_images, original_crystal = pyxtal.symmetry.check_images, pyxtal.random_crystal
    pyxtal.symmetry.check_images = partial(original_images, tm=_atomic_tolerances())
    pyxtal.random_crystal = _bounded_random_crystal()
    try:
        yield
    finally:
        pyxtal.symmetry.check_images, pyxtal.random_crystal = original_images, original_crystal


def candidate_seed(seed: int, chemsys: str, k: int) -> list[int]:
    """The sampler's seed for candidate ``k`` of one chemical system: the run's seed, a stable hash of the system and
    ``k``, so that a candidate is the same whichever other candidates are sampled, in whichever process (shards,
    host workers)."""
    return [seed, int(hashlib.sha256(chemsys.encode()).hexdigest()[:8], 16), k]


Recipe = tuple[tuple[str, int], ...]  # a composition as (element, amount) pairs, in the order pyxtal gets the species


def balanced_recipes(system: tuple[str, ...], max_atoms: int) -> list[Recipe]:
    """:func:`charge_balanced_compositions` of ``system`` as plain pairs (what a host worker sends back)."""
    return [tuple((el.symbol, int(comp[el])) for el in comp.elements)
            for comp in charge_balanced_compositions(list(system), max_atoms)]


def sample_crystal(item: tuple[tuple[str, ...], int, list[Recipe]], space_groups: Sequence[int], max_atoms: int,
                   seed: int, tries: int) -> Candidate | None:
    """Candidate ``k`` of a chemical system, ``item = (system, k, its balanced_recipes)``: the first of ``tries``
    random placements pyxtal accepts (a random charge-balanced composition, number of formula units and space
    group), or None."""
    system, k, recipes = item
    chemsys = "-".join(system)
    rng = np.random.default_rng(candidate_seed(seed, chemsys, k))
    with _pyxtal_bounded():
        for _ in range(tries if recipes else 0):
            recipe = recipes[rng.integers(len(recipes))]
            n_fu = sum(n for _, n in recipe)
            z = int(rng.integers(1, max(1, max_atoms // n_fu) + 1))
            sg = int(space_groups[rng.integers(len(space_groups))])
            try:
                structure = symmetric_crystal(sg, [el for el, _ in recipe], [n * z for _, n in recipe],
                                              int(rng.integers(1 << 31)))
            except Exception:  # noqa: BLE001 - composition incompatible with the group's Wyckoff sites
                continue
            if structure is not None and len(structure) <= max_atoms:
                return Candidate(f"{chemsys}-{k:04d}", f"builtin:sg{sg}", structure)
    return None


def sample_symmetric_crystals(chemical_systems: list[list[str]], per_system: int, space_groups: list[int],
                              max_atoms: int, seed: int, max_tries: int = 200, workers: int = 1,
                              progress=None) -> list[Candidate]:
    """Random symmetric crystals, ``per_system`` for each chemical system, ``max_tries`` placements per system
    shared equally by its candidates; in the order of the systems, and the same whatever ``workers`` (the
    compositions of one system, then one candidate, per host worker: a system whose placements mostly fail does not
    hold up the others). A candidate whose sampling fails is unreadable, with the reason."""
    systems = [tuple(system) for system in chemical_systems]
    out: dict[tuple[str, ...], list[Candidate]] = {system: [] for system in systems}
    items = []
    for system, recipes in zip(systems, map_isolated(partial(balanced_recipes, max_atoms=max_atoms), systems,
                                                     workers, min_items=2)):
        if isinstance(recipes, WorkerError):
            out[system] += [Candidate(f"{'-'.join(system)}-{k:04d}", "builtin", None,
                                      f"compositions failed: {recipes}") for k in range(per_system)]
        elif recipes:
            items += [(system, k, recipes) for k in range(per_system)]
        else:
            log.warning("no charge-balanced composition for %s within %d atoms", "-".join(system), max_atoms)
    work = partial(sample_crystal, space_groups=list(space_groups), max_atoms=max_atoms, seed=seed,
                   tries=max(1, -(-max_tries // per_system)))
    made = dict.fromkeys(systems, 0)
    for (system, k, _), found in zip(items, map_isolated(work, items, workers, progress, min_items=2)):
        if isinstance(found, WorkerError):
            out[system].append(Candidate(f"{'-'.join(system)}-{k:04d}", "builtin", None,
                                         f"sampling failed: {found}"))
        elif found is not None:
            out[system].append(found)
            made[system] += 1
    for system in dict.fromkeys(system for system, _, _ in items):
        if made[system] < per_system:
            log.warning("sampled only %d/%d crystals for %s", made[system], per_system, "-".join(system))
    return [candidate for system in systems for candidate in out[system]]


class CsxError(ValueError):
    """Chemical systems that break the configured CSX constraints (a configuration error)."""


def check_csx(systems: list[list[str]], required: list[str], allowed: list[str], n_elements: int | None) -> None:
    """The seed's CSX constraints on chemical systems: every required element, only allowed elements, and
    ``n_elements`` of them (null: any number)."""
    bad = []
    for system in systems:
        elements = set(system)
        why = [f"lacks {sorted(set(required) - elements)}" if not set(required) <= elements else "",
               f"has {sorted(elements - set(allowed) - set(required))} outside allowed_elements"
               if not elements <= set(allowed) | set(required) else "",
               f"has {len(elements)} elements, not {n_elements}" if n_elements and len(elements) != n_elements else ""]
        if any(why):
            bad.append(f"{'-'.join(system)} ({'; '.join(w for w in why if w)})")
    if bad:
        raise CsxError("chemical systems outside the CSX constraints: " + ", ".join(bad))


def draw_chemical_systems(required: list[str], allowed: list[str], n_systems: int, seed: int,
                          n_elements: int = 3) -> list[list[str]]:
    """``n_systems`` distinct systems: the required elements plus others drawn from ``allowed`` (seeded)."""
    rng = np.random.default_rng(seed)
    pool = sorted({e for e in allowed if e not in required and Element(e)})
    n_free = n_elements - len(required)
    if n_free < 0 or n_free > len(pool):
        raise ValueError(f"cannot make {n_elements}-element systems from {required} and {len(pool)} allowed elements")
    systems = set()
    for _ in range(50 * n_systems):
        if len(systems) == n_systems:
            break
        systems.add(tuple(required + sorted(rng.choice(pool, n_free, replace=False).tolist())))
    return [list(s) for s in sorted(systems)]
