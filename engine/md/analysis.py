"""MD analysis and verdict of one candidate: windowed D per species (Kahle, Marcolongo & Marzari, Energy Environ. Sci.
13, 928 (2020)), σ_Li by Nernst–Einstein extrapolated to room temperature, framework stability and the largest Li
MSD (``kernels/diffusion.py``)."""

from __future__ import annotations

import json

import numpy as np
import torch
from ase.data import chemical_symbols

from engine.core.rows import Status
from engine.md.protocol import MdSettings
from engine.md.replicas import Replica
from kernels.diffusion import (
    arrhenius_extrapolate,
    nernst_einstein_conductivity,
    windowed_diffusion,
)

LI = 3


def analyse(replica: Replica, positions: np.ndarray, settings: MdSettings):
    """Windowed D per species [Å²/ps] of one replica's production trajectory."""
    species = np.array(chemical_symbols)[replica.structure.numbers]
    return windowed_diffusion(torch.as_tensor(positions, dtype=torch.float64), species, settings.frame_interval_ps,
                              settings.window_ps, settings.fit_start_ps, settings.fit_end_ps)


def describe(cid: str, replicas: dict[float, Replica], estimates: dict, settings: MdSettings,
             supercell, prerelax_fmax: float) -> tuple[str, str, dict]:
    """(status, reason, columns) of one candidate from its finished replicas."""
    any_rep = next(iter(replicas.values()))
    s = any_rep.structure
    n_li = int(np.sum(s.numbers == LI))
    temps = list(settings.temperatures)
    out = {"supercell": np.asarray(supercell, dtype=np.int64), "n_atoms": len(s), "volume": s.volume, "n_li": n_li,
           "prerelax_fmax": prerelax_fmax,
           "temperature_mean": np.array([np.mean(replicas[t].temperatures) if replicas[t].temperatures else np.nan
                                         for t in temps]),
           "temperature_std": np.array([np.std(replicas[t].temperatures) if replicas[t].temperatures else np.nan
                                        for t in temps])}
    errors = [f"{t:g} K: {replicas[t].error}" for t in temps if replicas[t].error]
    if errors:
        return Status.ERROR, "; ".join(errors), out
    out["diffusion"] = json.dumps({f"{t:g}": {str(sp): [float(d), float(e)] for sp, d, e in
                                              zip(est.species, est.d, est.sem)} for t, est in estimates.items()})
    fails = []
    tr = estimates[settings.transport_temperature]
    d_li, d_li_sem = tr.of("Li")
    sigma = nernst_einstein_conductivity(d_li, n_li, s.volume, settings.transport_temperature)
    sigma_sem = nernst_einstein_conductivity(d_li_sem, n_li, s.volume, settings.transport_temperature)
    factor = arrhenius_extrapolate(1.0, settings.transport_temperature, settings.room_temperature,
                                   settings.activation_energy)
    out.update(d_li=d_li, d_li_sem=d_li_sem, sigma=sigma, sigma_sem=sigma_sem, sigma_room=sigma * factor,
               sigma_room_sem=sigma_sem * factor, max_li_msd=float(tr.max_msd[tr.species.index("Li")]))
    out["sigma_pass"] = bool(out["sigma_room"] - out["sigma_room_sem"] > settings.sigma_min)
    if not out["sigma_pass"]:
        resolved = "" if d_li > settings.d_resolution else f", D_Li below {settings.d_resolution:g} Å²/ps"
        fails.append(f"σ({settings.room_temperature:g} K) {out['sigma_room']:.2e} ± {out['sigma_room_sem']:.1e} "
                     f"S/cm{resolved}")
    out["li_msd_pass"] = bool(out["max_li_msd"] > settings.li_msd_min)
    if not out["li_msd_pass"]:
        fails.append(f"max Li MSD {out['max_li_msd']:.2f} Å² <= {settings.li_msd_min:g}")
    fw = estimates[settings.framework_temperature]
    others = [i for i, sp in enumerate(fw.species) if sp != "Li"]
    if others:
        slowest = min(others, key=lambda i: fw.d[i])
        out.update(d_framework=float(fw.d[slowest]), d_framework_sem=float(fw.sem[slowest]),
                   framework_species=str(fw.species[slowest]),
                   framework_msd=6.0 * max(float(fw.d[slowest]), 0.0) * settings.production_ps)
        out["framework_pass"] = bool(out["framework_msd"] < settings.framework_msd_max)
        if not out["framework_pass"]:
            fails.append(f"framework MSD {out['framework_msd']:.2f} Å² >= {settings.framework_msd_max:g} "
                         f"({out['framework_species']}, {settings.framework_temperature:g} K)")
    else:
        fails.append("no framework species")
    if fails:
        return Status.FAIL, "; ".join(fails), out
    return Status.PASS, "", out
