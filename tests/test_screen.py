"""The Hydra entry point end to end: bad inputs become recorded reasons, and a SIGKILLed run resumes."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
from pymatgen.core import Composition, Lattice, Structure

from engine.io.store import ResultStore
from tests.conftest import ROOT, rattled, without_controls

SPINE = ("stages=[candidates,relax,references,thermo,plausibility,phonons,pes]",
         "references.prototypes=false")  # the pipeline here; prototype completion: test_prototypes.py
# The kill test stops after relax to keep the suite short (thermo would relax ~40 reference phases first): the later
# stages skip what the file holds through the same store.done_ids, and md's rerun is checked in test_md.py.
SMALL = ["stages=[candidates,relax]", "candidates.chemical_systems=[[Li,Al,F],[Li,Mg,Cl],[Li,Y,Cl],[Li,Zr,Cl]]",
         "candidates.per_system=1", "candidates.max_atoms=10", "relax.max_steps=300", "threads=1"]


def screen(*overrides, timeout=600, wait=True):
    cmd = [sys.executable, "-m", "engine.screen", *without_controls(overrides)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def relax_rows(path):
    with ResultStore(path, "r") as store:
        ids = store.ids("relax")
        return dict(zip(ids, store.column("relax", "energy_per_atom"))), store.column("relax", "status")


def test_bad_inputs_are_recorded_and_the_rest_relaxed(tmp_path):
    folder = tmp_path / "cands"
    folder.mkdir()
    lif = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.05), ["Li", "F"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    rattled(lif.get_primitive_structure(), [0.02, 0, 0], 0.03, 0).to(filename=str(folder / "good_lif.cif"))
    licl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.2), ["Li", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    licl.get_primitive_structure().to(filename=str(folder / "good_licl.cif"))
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.5), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    nacl.replace(0, "Li")
    nacl.to(filename=str(folder / "lina3cl4.cif"))  # relaxes; builtin references have no Na
    overlap = lif.copy()
    overlap.append("Li", overlap[0].coords + [0.1, 0, 0], coords_are_cartesian=True)
    overlap.to(filename=str(folder / "overlap.cif"))
    Structure(Lattice.cubic(4.2), ["Li", "Po"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(filename=str(folder / "lipo.cif"))
    (folder / "broken.cif").write_text("data_x\n_cell_length_a\nloop_\n garbage\n")
    out = tmp_path / "bad.h5"
    stdout = screen(*SPINE, "candidates=files", f"candidates.path={folder}", f"output={out}", "threads=1")
    assert "relax" in stdout
    with ResultStore(out, "r") as store:
        cand = dict(zip(store.ids("candidates"), zip(store.column("candidates", "status"),
                                                     store.column("candidates", "reason"))))
        assert cand["broken"][0] == "error" and cand["broken"][1].startswith("unreadable")
        assert cand["overlap"][0] == "fail" and cand["overlap"][1].startswith("d_min")
        relax = dict(zip(store.ids("relax"), zip(store.column("relax", "status"), store.column("relax", "reason"))))
        assert relax["lipo"] == ("error", "elements not in model: Po (7net-0)")
        assert relax["good_lif"][0] == "pass" and relax["good_licl"][0] == "pass"
        assert set(relax) == {"lipo", "good_lif", "good_licl", "lina3cl4"}
        fmax = dict(zip(store.ids("relax"), store.column("relax", "fmax")))
        assert fmax["good_lif"] < 0.05
        thermo = {i: (s, r) for i, s, r in zip(store.ids("thermo"), store.column("thermo", "status"),
                                                store.column("thermo", "reason"))}
        assert set(thermo) == {"good_lif", "good_licl", "lina3cl4"}
        assert thermo["lina3cl4"][0] == "error" and "no reference for Na" in thermo["lina3cl4"][1]
        e_hull = dict(zip(store.ids("thermo"), store.column("thermo", "e_hull")))
        # both are references too: each lies where its built-in rock-salt reference lies (prototype completion may
        # find a lower polymorph: with SevenNet-0 one LiCl prototype lies 0.014 eV/atom below rock salt)
        ref_e_hull = dict(zip(store.ids("references"), store.column("references", "e_hull")))
        for cid, ref in (("good_lif", "builtin:LiF-rocksalt"), ("good_licl", "builtin:LiCl-rocksalt")):
            assert abs(e_hull[cid] - ref_e_hull[ref]) < 0.01 and ref_e_hull[ref] < 0.05, (cid, e_hull[cid])
        assert np.isnan(e_hull["lina3cl4"])  # never a silent 0
        window = dict(zip(store.ids("thermo"), zip(store.column("thermo", "e_red"), store.column("thermo", "e_ox"))))
        assert window["good_lif"][0] < 0.01 and window["good_lif"][1] > 5.5
        assert Composition("Li10GeP2S12").reduced_formula in set(store.column("references", "formula"))
    assert "thermo criteria (builtin references)" in stdout
    with ResultStore(out, "r") as store:  # plausibility takes what passed thermo, phonons what it passed, pes the rest
        passed = set(store.ids("thermo", status="pass"))
        assert passed and set(store.ids("plausibility")) == passed
        plausible = {i: (store.column_by_id("plausibility", f"{f}_verdict")[i]) for i in passed
                     for f in ("coordination",)}
        assert plausible["good_lif"] == "ok" and plausible["good_licl"] == "ok", plausible
        assert set(store.ids("phonons")) == set(store.ids("plausibility", status="pass"))
        phonons = dict(zip(store.ids("phonons"), store.column("phonons", "verdict")))
        assert phonons["good_lif"] == "stable" and phonons["good_licl"] == "stable", phonons
        passed = set(store.ids("phonons", status="pass"))
        assert passed and set(store.ids("pes")) == passed
        for i, cid in enumerate(store.ids("pes")):
            row = {k: store.column("pes", k)[i] for k in ("status", "reason", "xi", "barrier_1d", "barrier_3d",
                                                            "barrier_pass", "framework_points", "framework_evaluated",
                                                            "interstitial_points", "interstitial_evaluated")}
            assert row["status"] in ("pass", "fail"), (cid, row)
            assert 0.0 <= row["barrier_1d"] <= row["barrier_3d"] < np.inf, (cid, row)
            assert 0 < row["framework_evaluated"] < row["framework_points"]  # points near atoms excluded
            if row["barrier_pass"]:  # pes=quick: the framework grid comes first and decides alone
                assert np.isnan(row["xi"]) and row["interstitial_points"] == 0, (cid, row)
                assert row["reason"] == "interstitial not computed: framework passed (pes.short_circuit)"
            else:
                # an interstitial grid may have no point outside the exclusion radii: then Ξ is 0, without a model call
                assert 0.0 <= row["xi"] <= 1.0 and 0 <= row["interstitial_evaluated"] < row["interstitial_points"]
                assert row["interstitial_evaluated"] or row["xi"] == 0.0
    assert "Li-transport criteria (probe grids)" in stdout


def committed_relax_rows(path) -> int:
    try:
        with h5py.File(path, "r") as h5:
            return int(h5["relax"].attrs.get("rows", 0)) if "relax" in h5 else 0
    except (OSError, KeyError):
        return 0


def signal_once_relax_has(proc, path, n_rows: int, signum) -> float | None:
    """Send ``signum`` to the run once ``path`` holds ``n_rows`` committed relax rows; the time it was sent."""
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if committed_relax_rows(path) >= n_rows:
            os.kill(proc.pid, signum)
            return time.time()
    return None


def test_sigkill_or_sigterm_mid_relaxation_then_rerun_resumes_without_redoing_work(tmp_path):
    """SIGKILL after the first relaxed row, then a resume stopped by SIGTERM (scancel, a time limit, a preemption)
    after one more: a clean stop with status 143 and the line saying how to resume; the last rerun finishes and agrees
    with the uninterrupted run, every row kept as it was written."""
    reference = tmp_path / "reference.h5"
    screen(*SMALL, f"output={reference}")
    ref_energy, ref_status = relax_rows(reference)
    assert len(ref_energy) == 4

    killed = tmp_path / "killed.h5"
    proc = screen(*SMALL, f"output={killed}", wait=False)
    signal_once_relax_has(proc, killed, 1, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed mid-relaxation"
    done_before_kill, _ = relax_rows(killed)
    assert 1 <= len(done_before_kill) < 4

    proc = screen(*SMALL, f"output={killed}", wait=False)
    signalled = signal_once_relax_has(proc, killed, len(done_before_kill) + 1, signal.SIGTERM)
    out = proc.communicate(timeout=60)[0].decode()
    if proc.returncode == 0:  # the rows left all came at once, before the signal: stop a fresh run instead
        killed, done_before_kill = tmp_path / "stopped.h5", {}
        proc = screen(*SMALL, f"output={killed}", wait=False)
        signalled = signal_once_relax_has(proc, killed, 1, signal.SIGTERM)
        out = proc.communicate(timeout=60)[0].decode()
    assert signalled and time.time() - signalled < 30
    assert proc.returncode == 143, out[-2000:]
    assert "stopped by SIGTERM in stage relax" in out and "rerun the same command to resume" in out
    done_before_stop, _ = relax_rows(killed)
    assert len(done_before_kill) < len(done_before_stop) and all(done_before_stop[c] == e
                                                                  for c, e in done_before_kill.items())

    screen(*SMALL, f"output={killed}")
    energy, status = relax_rows(killed)
    with ResultStore(killed, "r") as store:
        ids = store.ids("relax")
    assert sorted(ids) == sorted(set(ids)) == sorted(ref_energy)  # nothing relaxed twice
    for cid, e in done_before_stop.items():
        assert energy[cid] == e  # finished rows are kept as they were
    for cid, e in ref_energy.items():  # and the resumed run agrees with the uninterrupted one
        assert abs(energy[cid] - e) < 2e-3, (cid, energy[cid], e)
    assert sorted(status) == sorted(ref_status)
