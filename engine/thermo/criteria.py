"""The coating criteria of the reference pipeline: anode coating (AC) and cathode coating (CC) from the stability
window, the electrolyte's window and the mixing energies with the electrolyte and the cathode.

Two sets ship (``conf/criteria/``). ``seed`` reproduces the reference pipeline's published *results*: its text asks a
cathode coating for E_ox > 4.5 V, yet 14 of the 21 cathode-coating finalists in its table are chlorides with E_ox of
4.28-4.32 V (13 at 4.28 V, the oxidation limit of LiCl) and none lies above 4.5 V. Its results are those of
stability at 4.5 V within 0.3 V, the same tolerance as the anode side's E_red < 0.3 V for stability at 0 V ("relatively
tolerant thermodynamic criteria"), so ``seed`` asks E_ox > 4.2 V. ``strict`` keeps the stated E_ox > 4.5 V.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CoatingCriteria:
    """The seed pipeline's criteria [eV/atom, V vs Li/Li+] as its results apply them (module docstring)."""
    name: str = "seed"  # which set judged the run (conf/criteria/: seed, strict), said in the report
    e_hull_max: float = 0.2
    ac_e_red_max: float = 0.3  # AC: E_red below this (stable at 0 V within 0.3 V) and E_ox above E_red(electrolyte)
    cc_e_ox_min: float = 4.2  # CC: E_ox above this (stable at 4.5 V within 0.3 V) and E_red below E_ox(electrolyte)
    e_rxn_min: float = -0.2  # mixing energy with the electrolyte (and the cathode, for CC) above this
    # [E_red, E_ox] V vs Li/Li+: the electrolyte window the AC/CC criteria use; null: the run's own (its model and
    # references; checked against the published window, engine.thermo.electrolyte, with a warning where it is off)
    electrolyte_window: list[float] | None = None

    def __post_init__(self):
        w = self.electrolyte_window
        if w is not None and not (len(w) == 2 and w[0] < w[1]):
            raise ValueError(f"criteria.electrolyte_window must be [E_red, E_ox] with E_red < E_ox (V), not {w}")


@dataclass
class Verdict:
    anode: bool
    cathode: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return {(True, True): "AC+CC", (True, False): "AC", (False, True): "CC"}.get((self.anode, self.cathode),
                                                                                   "none")


def classify(e_red: float, e_ox: float, e_rxn_electrolyte: float, e_rxn_cathode: float,
             electrolyte_window: tuple[float, float], c: CoatingCriteria) -> Verdict:
    """Anode-coating (AC) and cathode-coating (CC) verdicts of a candidate that passed E_hull; ``reasons`` says
    which criterion each failed verdict missed."""
    el_red, el_ox = electrolyte_window
    reasons = []
    mix_ok = e_rxn_electrolyte > c.e_rxn_min
    if not mix_ok:
        reasons.append(f"E_rxn with the electrolyte {e_rxn_electrolyte:.3f} <= {c.e_rxn_min} eV/atom")
    anode = mix_ok and e_red < c.ac_e_red_max and e_ox > el_red
    if not anode and mix_ok:
        reasons.append(f"AC needs E_red < {c.ac_e_red_max} V and E_ox > {el_red:.2f} V"
                       f" (has {e_red:.2f}, {e_ox:.2f})")
    cathode_mix_ok = e_rxn_cathode > c.e_rxn_min
    cathode = mix_ok and cathode_mix_ok and e_ox > c.cc_e_ox_min and e_red < el_ox
    if mix_ok and not cathode:
        if not (e_ox > c.cc_e_ox_min and e_red < el_ox):
            reasons.append(f"CC needs E_ox > {c.cc_e_ox_min} V and E_red < {el_ox:.2f} V"
                           f" (has {e_red:.2f}, {e_ox:.2f})")
        if not cathode_mix_ok:
            reasons.append(f"CC needs E_rxn with the cathode > {c.e_rxn_min} eV/atom (has {e_rxn_cathode:.3f})")
    return Verdict(anode, cathode, reasons)
