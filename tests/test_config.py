"""The config schema: unknown keys stop the run before any work, naming the key; YAML holds only differences."""

import dataclasses
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from engine.config import ScreenConfig, from_stored
from engine.pes.stage import PesSettings
from engine.relax.fire import RelaxSettings
from tests.conftest import ROOT


def screen_fails(*args, cwd=ROOT) -> str:
    proc = subprocess.run([sys.executable, "-m", "engine.screen", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


def test_an_unknown_key_on_the_command_line_stops_the_run_naming_it(tmp_path):
    out = tmp_path / "never.h5"
    text = screen_fails("relax.fmx=0.1", f"output={out}")
    assert "Key 'fmx' not in 'RelaxSettings'" in text and "relax.fmx" in text
    assert not out.exists()  # stopped before any work


def test_an_unknown_key_in_a_conf_file_stops_the_run_naming_it(tmp_path):
    (tmp_path / "pes").mkdir()
    (tmp_path / "pes" / "typo.yaml").write_text("spacing: 0.4\nshort_circut: true\n")
    out = tmp_path / "never.h5"
    text = screen_fails("--config-dir", str(tmp_path), "pes=typo", f"output={out}")
    assert "Key 'short_circut' not in 'PesSettings'" in text
    assert not out.exists()


def test_the_composed_default_config_is_the_schema_plus_the_yaml_differences():
    from hydra import compose, initialize_config_dir

    from engine.config import register
    from engine.stages import default_stages

    register()
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = compose("screen")
        smoke = compose("screen", overrides=["preset=smoke"])
    assert OmegaConf.to_object(cfg.relax) == RelaxSettings()
    pes = OmegaConf.to_object(cfg.pes)
    assert isinstance(pes, PesSettings) and pes.spacing == 0.5 and pes.short_circuit  # pes=quick
    assert pes.xi_min == PesSettings().xi_min  # the rest from the schema
    assert cfg.references.partners == ["Li10GeP2S12", "LiCoO2"]  # interpolated from thermo
    assert cfg.stages is None  # every stage the device affords (engine.stages.default_stages)
    assert default_stages() == ["candidates", "bandgap", "novelty", "relax", "references", "relaxed_novelty",
                                "thermo", "committee", "plausibility", "phonons", "pes"]
    assert default_stages(gpu=True)[-1] == "md"
    assert list(cfg.controls) == ["Li3YCl6", "LiF"] and cfg.criteria.name == "seed"
    assert smoke.md.production_ps == 0.2 and smoke.md.model is None and smoke.candidates.per_system == 1

    typed = from_stored(OmegaConf.to_yaml(cfg, resolve=True))
    assert isinstance(typed, ScreenConfig) and typed.pes == pes and typed.candidates.max_atoms == 12


def test_a_stored_config_from_an_older_layout_still_reads():
    typed = from_stored("thermo: {cache_dir: /old, electrolyte: Li3PS4}\ncandidates: {source: files, path: x}\n")
    assert typed.thermo.electrolyte == "Li3PS4" and typed.candidates.path == "x"
    with pytest.raises(AttributeError):
        typed.thermo.cache_dir  # noqa: B018 - the old key is left out


def test_the_slurm_launcher_config_resolves_for_a_shard():
    proc = subprocess.run([sys.executable, "-m", "engine.screen", "hydra/launcher=slurm", "shard.count=64",
                           "shard.index=3", "output=runs/x_${shard.index}.h5", "hydra.launcher.partition=gpu",
                           "--cfg", "hydra"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    launcher = OmegaConf.create(proc.stdout).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.gpus_per_node == 1
    assert launcher.max_num_timeout > 0 and launcher.partition == "gpu"  # preempted shards are requeued


def test_a_run_resumes_with_other_batch_sizes_but_not_other_physics(tmp_path):
    """Batch sizes say how the work is cut, not what it computes: a run that ran out of memory resumes with smaller
    batches (or on another device); a changed convergence criterion is still refused."""
    from hydra import compose, initialize_config_dir

    from engine.config import register
    from engine.io.store import ResultStore
    from engine.screen import check_resumable
    from engine.stages import STAGES

    register()
    chunked = [s.name for s in STAGES
               if s.settings and "chunk_size" in {f.name for f in dataclasses.fields(s.settings)}]
    assert {"bandgap", "novelty", "relaxed_novelty", "thermo", "committee", "plausibility", "phonons",
            "pes"} <= set(chunked)
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        first = compose("screen")
        smaller = compose("screen", overrides=["relax.max_atoms_per_batch=64", "pes.cpu_atoms_per_batch=50",
                                               "md.frames_per_flush=10", "relax.init_chunk=8", "bandgap.batch_size=3",
                                               *[f"{name}.chunk_size=1" for name in chunked]])
        other = compose("screen", overrides=["relax.fmax=0.02"])
    with ResultStore(tmp_path / "run.h5") as store:
        store.write_metadata(OmegaConf.to_yaml(first, resolve=True), {}, {})
        check_resumable(store, smaller)
        with pytest.raises(SystemExit, match="different relax settings"):
            check_resumable(store, other)


def test_an_unknown_filter_action_stops_the_run_naming_the_values(tmp_path):
    out = tmp_path / "never.h5"
    text = screen_fails("plausibility.coordination=maybe", f"output={out}")
    assert "Invalid value 'maybe', expected one of [flag, reject, off]" in text
    assert not out.exists()


def test_an_unknown_band_gap_rule_stops_the_run_naming_the_values(tmp_path):
    out = tmp_path / "never.h5"
    text = screen_fails("bandgap.rule=any", f"output={out}")
    assert "Invalid value 'any', expected one of [agree_below, majority, all_above]" in text
    assert not out.exists()


def test_hydras_add_a_key_form_is_refused_in_one_line(tmp_path):
    out = tmp_path / "never.h5"
    text = screen_fails("+relax.fmx=0.1", f"output={out}")
    lines = [line for line in text.splitlines() if line.strip() and "Warp" not in line and "warn" not in line.lower()]
    assert lines == ["relax.fmx: Key 'fmx' not in 'RelaxSettings'"], lines
    assert not out.exists()


@pytest.mark.parametrize("override, key", [("md.temperatures=[-5]", "md.temperatures"),
                                           ("md.temperatures=[600]", "md.temperatures"),
                                           ("pes.approaches=[x]", "pes.approaches"),
                                           ("references.energies=modle", "references.energies"),
                                           ("relax.cell_filter=foo", "relax.cell_filter"),
                                           ("shard.index=3", "shard.index"),
                                           ("stages=[candidates,nosuch]", "stages"),
                                           ("phonons.model=nosuch", "phonons.model")])
def test_a_bad_value_is_refused_before_any_work_naming_its_key(override, key):
    """Composition (Hydra: types and choices) or validation (engine.config.validated: ranges, stages, models) stops
    it, with a message that names the key."""
    from hydra import compose, initialize_config_dir
    from omegaconf.errors import OmegaConfBaseException

    from engine.config import register, validated

    register()
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        try:
            cfg = compose("screen", overrides=[override])
        except Exception as exc:  # noqa: BLE001 - Hydra's composition error, its cause names the key
            cause = exc.__cause__ or exc
            assert isinstance(cause, OmegaConfBaseException) and key in str(cause), str(exc)
            return
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        validated(cfg)


def test_an_unknown_committee_member_stops_the_run_naming_the_setting():
    from omegaconf import OmegaConf

    from engine.config import check_model_specs

    check_model_specs(OmegaConf.create({"committee": {"models": ["chgnet", {"kind": "analytic", "name": "w"}]},
                                        "phonons": {"model": None}, "pes": {"interstitial_model": None,
                                        "framework_model": None}, "md": {"model": None}}))
    with pytest.raises(ValueError, match=r"committee.models: no model config 'chgnett'"):
        check_model_specs(OmegaConf.create({"committee": {"models": ["chgnet", "chgnett"]},
                                            "phonons": {"model": None}, "pes": {"interstitial_model": None,
                                            "framework_model": None}, "md": {"model": None}}))
