"""Crystals from a space group and the asymmetric unit, with pymatgen's space group built once per process."""

from __future__ import annotations

from functools import cache

from pymatgen.core import Structure


@cache
def _held_space_group(sg: str | int):
    from pymatgen.symmetry.groups import SpaceGroup

    return SpaceGroup.from_int_number(int(sg)) if str(sg).isdigit() else SpaceGroup(str(sg))


def from_spacegroup(sg: str | int, lattice, species, coords) -> Structure:
    """pymatgen's ``Structure.from_spacegroup``, its space group built once per process: pymatgen caches
    ``SpaceGroup`` objects (monty's ``cached_class``) in a weak dictionary, so unless a reference is held each call
    generates the group's operations again (0.4 s for a cubic group, most of the reference phases' construction).
    The same structure."""
    _held_space_group(sg)
    return Structure.from_spacegroup(sg, lattice, species, coords)
