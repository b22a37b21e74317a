"""The built-in candidate sampler: charge-balanced Li-X-Y compositions in random symmetric crystals, under the
seed's CSX constraints (required elements, allowed elements, number of elements).

Compositions are balanced with common oxidation states (pymatgen's ``Composition.oxi_state_guesses``) and placed
in random crystals of the configured space groups with pyxtal (Fredericks et al., Comput. Phys. Commun. 261,
107810 (2021)). Everything is seeded: the same settings give the same candidates, which lets a killed run resume.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from functools import cache

import numpy as np
from pymatgen.core import Composition, Element

from engine.candidates.readers import Candidate

log = logging.getLogger(__name__)

# The reference pipeline's allowed elements (CSX mode)
SEED_ALLOWED_ELEMENTS = ["H", "Li", "Be", "B", "C", "N", "O", "F", "Mg", "Al", "Si", "P", "S", "Cl", "Ca", "Sc", "Ti",
                         "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Sr", "Y", "Zr", "Nb", "Ag", "Cd", "In", "Sn", "Sb",
                         "Te", "I", "Ba", "La", "Hf", "Ta", "W", "Pb", "Bi"]


@cache
def _charge_balanced(formula: str) -> bool:
    """Balanced with common oxidation states, Li as Li+ and the most electronegative element an anion."""
    comp = Composition(formula)
    anion = max(comp.elements, key=lambda el: el.X).symbol
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guesses = comp.oxi_state_guesses(max_sites=-1)
    return any(g.get("Li", 1) == 1 and g[anion] < 0 for g in guesses)


def charge_balanced_compositions(elements: list[str], max_atoms: int, max_coeff: int = 6) -> list[Composition]:
    """Reduced compositions containing every element of ``elements`` (≤ ``max_atoms`` per formula unit) that
    can be charge balanced with common oxidation states."""
    found = {}
    for coeffs in itertools.product(range(1, max_coeff + 1), repeat=len(elements)):
        if sum(coeffs) > max_atoms or np.gcd.reduce(coeffs) != 1:
            continue
        comp = Composition(dict(zip(elements, coeffs)))
        if _charge_balanced(comp.formula):
            found[comp.reduced_formula] = comp
    return [found[k] for k in sorted(found)]


def symmetric_crystal(space_group: int, species: list[str], num_ions: list[int], seed: int, sites=None):
    """A random pyxtal crystal of ``space_group`` (on the given Wyckoff ``sites`` per species, if any), or None when
    pyxtal's result is not valid; pyxtal raises for compositions the group's Wyckoff positions cannot hold."""
    from pyxtal import pyxtal

    crystal = pyxtal()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crystal.from_random(3, space_group, species, num_ions, sites=sites, random_state=seed)
    if not crystal.valid:
        return None
    return crystal.to_pymatgen()


def _random_crystal(comp: Composition, space_group: int, z: int, seed: int):
    return symmetric_crystal(space_group, [el.symbol for el in comp.elements],
                             [int(comp[el]) * z for el in comp.elements], seed)


def sample_symmetric_crystals(chemical_systems: list[list[str]], per_system: int, space_groups: list[int],
                              max_atoms: int, seed: int, max_tries: int = 200) -> list[Candidate]:
    """Random symmetric crystals, ``per_system`` for each chemical system, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    out: list[Candidate] = []
    for system in chemical_systems:
        chemsys = "-".join(system)
        comps = charge_balanced_compositions(list(system), max_atoms)
        if not comps:
            log.warning("no charge-balanced composition for %s within %d atoms", chemsys, max_atoms)
            continue
        made = 0
        for _ in range(max_tries):
            if made == per_system:
                break
            comp = comps[rng.integers(len(comps))]
            n_fu = int(comp.num_atoms)
            z = int(rng.integers(1, max(1, max_atoms // n_fu) + 1))
            sg = int(space_groups[rng.integers(len(space_groups))])
            try:
                structure = _random_crystal(comp, sg, z, int(rng.integers(1 << 31)))
            except Exception:  # noqa: BLE001 - composition incompatible with the group's Wyckoff sites
                continue
            if structure is None or len(structure) > max_atoms:
                continue
            out.append(Candidate(f"{chemsys}-{made:04d}", f"builtin:sg{sg}", structure))
            made += 1
        if made < per_system:
            log.warning("sampled only %d/%d crystals for %s", made, per_system, chemsys)
    return out


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
