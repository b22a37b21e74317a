"""uMLIP energies as pymatgen entries and the energy corrections they take (references and candidates alike).

Energy corrections (``correction`` in conf/references/ and conf/model/): ``mp2020`` applies pymatgen's
``MaterialsProject2020Compatibility``. A uMLIP trained on MPtrj reproduces raw MP energies, i.e. GGA or GGA+U
depending on the composition, so each entry gets the run type and Hubbard U values MP would have used
(``MPRelaxSet``: U on Co, Cr, Fe, Mn, Mo, Ni, V, W in oxides and fluorides). ``none`` uses the raw energies. The
thermodynamic analysis on these entries is :mod:`engine.thermo.hulls`; the models name their correction here, so
that the model layer depends on no stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np
from pymatgen.core import Composition, Structure
from pymatgen.entries.compatibility import CompatibilityError, MaterialsProject2020Compatibility
from pymatgen.entries.computed_entries import ComputedEntry, ComputedStructureEntry
from pymatgen.io.vasp.sets import MPRelaxSet


class Correction(StrEnum):
    """The energy correction applied to references and candidates alike. Which one a model's energies need depends on
    its training data: ``mp2020`` for MPtrj (MP's mixed GGA/GGA+U energies); ``mp2020_anions`` for a pure-PBE set
    such as MatPES-PBE (no +U anywhere, so MP2020's GGA/GGA+U mixing corrections do not apply, while its anion
    corrections fix the same GGA errors of O2, F2, Cl2, S, ... as in MP); ``none`` for raw energies, or for a model
    trained on MP2020-corrected energies (CHGNet 0.3.0)."""
    mp2020 = "mp2020"  # MaterialsProject2020Compatibility
    mp2020_anions = "mp2020_anions"  # MaterialsProject2020Compatibility without its GGA/GGA+U mixing corrections
    none = "none"


CORRECTIONS = tuple(Correction)
MIXING_CORRECTION = "MP2020 GGA/GGA+U mixing correction"  # pymatgen's name of the +U energy adjustments


def mp_run_parameters(composition: Composition) -> dict:
    """The run type and Hubbard U values the Materials Project would have used for ``composition``."""
    u_table = MPRelaxSet.CONFIG["INCAR"]["LDAUU"]  # {"O": {"Co": 3.32, ...}, "F": {...}}
    symbols = {el.symbol for el in composition.elements}
    hubbards = {}
    for anion in ("F", "O"):  # MP: O takes precedence over F
        if anion in symbols:
            hubbards = {el: u for el, u in u_table[anion].items() if el in symbols}
            if hubbards:
                break
    return {"run_type": "GGA+U" if hubbards else "GGA", "is_hubbard": bool(hubbards), "hubbards": hubbards}


def model_entry(structure: Structure, energy: float, entry_id: str) -> ComputedStructureEntry:
    """An entry for a uMLIP total energy [eV] with the MP run parameters its composition implies."""
    return ComputedStructureEntry(structure, energy, parameters=mp_run_parameters(structure.composition),
                                  entry_id=entry_id)


def apply_correction(entries: Sequence[ComputedEntry], scheme: str) -> tuple[list[ComputedEntry], dict[str, str]]:
    """Corrected copies of ``entries``; those the scheme rejects come back in the second value with a reason."""
    if scheme not in CORRECTIONS:
        raise ValueError(f"unknown correction {scheme!r}; use one of {[str(c) for c in CORRECTIONS]}")
    if scheme == "none":
        return list(entries), {}
    compat = MaterialsProject2020Compatibility(check_potcar=False)
    kept, dropped = [], {}
    for e in entries:
        e = e.copy()
        try:
            e = compat.process_entry(e, clean=True, on_error="raise")
        except CompatibilityError as exc:
            dropped[e.entry_id] = f"MP2020 correction: {exc}"
            continue
        if scheme == Correction.mp2020_anions:
            e.energy_adjustments = [a for a in e.energy_adjustments if not a.name.startswith(MIXING_CORRECTION)]
        kept.append(e)
    return kept, dropped


def correction_of(model_cfg, default: str) -> str:
    """The correction scheme a model's energies take: its config's ``correction`` (what its training data need),
    else ``default`` (the run's ``references.correction``)."""
    own = model_cfg.get("correction") if hasattr(model_cfg, "get") else getattr(model_cfg, "correction", None)
    return str(own or default)


def chemsys(composition: Composition) -> frozenset[str]:
    return frozenset(el.symbol for el in composition.elements)


def below_formation_floor(entries: Sequence[ComputedEntry], floor: float) -> tuple[list[ComputedEntry], dict[str, str]]:
    """``entries`` less the compounds whose formation energy [eV/atom] against the lowest elemental entries of the
    same set lies below ``floor`` (a model's hole, not a phase), and why each was left out."""
    elements = {}
    for e in entries:
        if e.composition.is_element:
            el = e.composition.elements[0]
            elements[el] = min(elements.get(el, np.inf), e.energy_per_atom)
    kept, holes = [], {}
    for e in entries:
        comp = e.composition
        if comp.is_element or not all(el in elements for el in comp.elements):
            kept.append(e)
            continue
        formation = e.energy_per_atom - sum(comp.get_atomic_fraction(el) * elements[el] for el in comp.elements)
        if formation < floor:
            holes[e.entry_id] = (f"unphysical: formation energy {formation:.2f} eV/atom below "
                                 f"references.min_formation_energy ({floor}): a hole of the model")
        else:
            kept.append(e)
    return kept, holes


def corrected_references(raw: Sequence[ComputedEntry], scheme: str, min_formation_energy: float
                         ) -> tuple[list[ComputedEntry], dict[str, str]]:
    """Reference entries as every hull takes them: corrected with ``scheme``, less those it rejects and those below
    ``min_formation_energy`` [eV/atom] (:func:`below_formation_floor`); the second value says why each was left out."""
    entries, dropped = apply_correction(raw, scheme)
    entries, holes = below_formation_floor(entries, min_formation_energy)
    return entries, {**dropped, **holes}
