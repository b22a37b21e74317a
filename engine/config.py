"""The run's config schema, derived from the stage table, registered with Hydra's ConfigStore.

:data:`ScreenConfig` has one section per stage of :mod:`engine.stages` (and per further section a stage owns, such as
thermo's ``criteria``), typed by the stage's settings dataclass, plus the run's own settings (:class:`RunSettings`).
The dataclasses hold every setting and its default; the YAML files in ``conf/`` hold only what differs from them.
Every node is typed and every dataclass checks its ranges in ``__post_init__``, and :func:`validated` builds the
whole typed config before any work: an unknown key (``relax.fmx=0.1``, ``+relax.fmx=0.1``), a value outside its
choices or its range stops the run with one line naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass

import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from engine.candidates.readers import CandidatesSettings
from engine.candidates.stage import BuiltinCandidates, FilesCandidates, ShardSettings
from engine.candidates.wyformer import WyformerCandidates
from engine.controls import KNOWN as KNOWN_CONTROLS
from engine.controls import check_names as check_control_names
from engine.core.settings import REDACTED
from engine.models import ModelSettings, model_config
from engine.stages import STAGES, Stage

BATCHING_KEYS = ("max_atoms_per_batch", "cpu_atoms_per_batch", "init_chunk", "chunk_size", "batch_size",
                 "frames_per_flush")  # how work is batched, not what it computes: free to change on resume
CANDIDATE_SOURCES = {"builtin": BuiltinCandidates, "files": FilesCandidates, "wyformer": WyformerCandidates}


@dataclass
class RunSettings:
    """The run's own settings, beside the stages' sections. Only ``model`` defines results: the others may differ
    between the shards of one screen (``shard``, ``output``) or between runs on one file."""
    model: ModelSettings = field(default_factory=ModelSettings)  # the run's uMLIP (relax, references, default)
    stages: list[str] | None = None  # run in this order (engine.stages); null: every stage the device affords
    shard: ShardSettings = field(default_factory=ShardSettings)  # this process's slice of the candidates
    device: str = "auto"  # auto = cuda when available, else cpu
    threads: int | None = None  # torch CPU threads (null: torch's default)
    workers: int | None = None  # processes for host-side work: sampling, CrystalNN, ... (null: every core)
    output: str = "runs/screen.h5"  # one HDF5 file per run; rerunning the same command resumes it
    # known materials screened beside the candidates, each against its expected verdicts (engine.controls); [] = none
    controls: list[str] = field(default_factory=lambda: list(KNOWN_CONTROLS))

    def __post_init__(self):
        check_control_names(self.controls)
        for key in ("threads", "workers"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1 (or null), not {getattr(self, key)}")


FREE_ON_RESUME = ("stages", "shard", "device", "threads", "workers", "output", "controls")  # controls: added on resume


def stage_sections(stages: tuple[Stage, ...] = STAGES) -> list[tuple[str, type, str]]:
    """(section, settings dataclass, default conf option) of every stage and of every further section a stage owns,
    in table order."""
    out = []
    for s in stages:
        out.append((s.name, s.settings or CandidatesSettings, s.conf))
        out += list(s.sections)
    return out


def schema(stages: tuple[Stage, ...] = STAGES) -> type:
    """The run's config dataclass for a stage table: :class:`RunSettings` plus one field per stage section (the
    candidates section is left to its conf group, which picks one of :data:`CANDIDATE_SOURCES`)."""
    extra = [(name, tp, MISSING if tp is CandidatesSettings else field(default_factory=tp))
             for name, tp, _ in stage_sections(stages)]
    return make_dataclass("ScreenConfig", extra, bases=(RunSettings,))


ScreenConfig = schema()


def frozen_on_resume(stages: tuple[Stage, ...] = STAGES) -> tuple[str, ...]:
    """Config sections that must not change when a run is resumed (or between the shards of one screen): they define
    what is already in the file. Every stage section and the run's model."""
    return ("model", *(name for name, _, _ in stage_sections(stages)))


def marked_settings(kind: str, stages: tuple[Stage, ...] = STAGES) -> dict[str, set[str]]:
    """{section: keys} of the settings declared ``kind`` ("secret" or "local", :mod:`engine.core.settings`)."""
    out: dict[str, set[str]] = {}
    for name, tp, _ in stage_sections(stages):
        keys = {f.name for f in fields(tp) if f.metadata.get(kind)}
        if tp is CandidatesSettings:
            keys |= {f.name for src in CANDIDATE_SOURCES.values() for f in fields(src) if f.metadata.get(kind)}
        if keys:
            out.setdefault(name, set()).update(keys)
    return out


def stored_config(cfg, stages: tuple[Stage, ...] = STAGES) -> str:
    """The resolved config as the run file keeps it (YAML): every secret setting that is set reads ``<redacted>``."""
    data = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    for section, keys in marked_settings("secret", stages).items():
        for key in keys:
            if isinstance(data.get(section), dict) and data[section].get(key) is not None:
                data[section][key] = REDACTED
    return yaml.safe_dump(data, sort_keys=False)


def model_specs(stages: tuple[Stage, ...] = STAGES) -> list[tuple[str, str]]:
    """(section, key) of every stage setting that names a uMLIP other than the run's
    (:func:`engine.models.base.umlip_setting`: null, a file in conf/model/, or a model config)."""
    return [(name, f.name) for name, tp, _ in stage_sections(stages) for f in fields(tp) if f.metadata.get("umlip")]


def check_model_specs(cfg, stages: tuple[Stage, ...] = STAGES) -> None:
    """Each model a stage names exists as a config and has only known keys; raises ValueError naming the setting."""
    for section, key in model_specs(stages):
        value = cfg[section][key]
        specs = list(value) if OmegaConf.is_list(value) or isinstance(value, list) else [value]
        for spec in specs:
            if spec is None:
                continue
            try:
                model_config(spec if isinstance(spec, str) else OmegaConf.to_container(spec))
            except Exception as exc:  # noqa: BLE001 - omegaconf and file errors alike, reported with the setting
                raise ValueError(f"{section}.{key}: {str(exc).splitlines()[0]}") from None


def validated(cfg: DictConfig, stages: tuple[Stage, ...] = STAGES):
    """The typed config of a composed one, built before any work: every key known to the schema (Hydra's ``+key=``
    form included), every value of its type, within its choices and ranges (each dataclass's ``__post_init__``),
    every stage and every model it names known. Raises ValueError with one line naming the key."""
    node = OmegaConf.structured(schema(stages))
    source = str(cfg.candidates.get("source", "builtin")) if "candidates" in cfg else "builtin"
    if source not in CANDIDATE_SOURCES:
        raise ValueError(f"candidates.source: {source!r} is not one of {sorted(CANDIDATE_SOURCES)}")
    node.candidates = OmegaConf.structured(CANDIDATE_SOURCES[source])
    try:
        typed = OmegaConf.to_object(OmegaConf.merge(node, OmegaConf.to_container(cfg, resolve=True)))
    except Exception as exc:  # noqa: BLE001 - omegaconf's and the dataclasses' errors alike
        raise ValueError(one_line(exc)) from None
    names = [s.name for s in stages]
    unknown = [s for s in typed.stages or [] if s not in names]
    if unknown:
        raise ValueError(f"stages: unknown {unknown}; available: {names}")
    check_model_specs(cfg, stages)
    return typed


def one_line(exc: BaseException) -> str:
    """omegaconf's message without its "full_key: ..., object_type=..." trailer lines, naming the key."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    key = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("full_key:")), "")
    head = lines[0] if lines else type(exc).__name__
    return f"{key}: {head}" if key and key not in head else head


def register(stages: tuple[Stage, ...] = STAGES) -> None:
    """Register the schema (``screen_schema``, whose defaults list picks each stage section's default conf option
    from the stage table), each stage's ``schema`` option (the dataclass's defaults) and each candidate source's
    (``candidates/<source>_schema``); and the ``${all_stages:}`` resolver (every stage of the table, in order)."""
    cs = ConfigStore.instance()
    node = OmegaConf.structured(schema(stages))
    defaults = ["_self_"] + [{name: option} for name, _, option in stage_sections(stages)]
    cs.store(name="screen_schema", node=OmegaConf.merge({"defaults": defaults}, node))
    for name, tp, _ in stage_sections(stages):
        if tp is not CandidatesSettings:
            cs.store(group=name, name="schema", node=tp)
    for source, src in CANDIDATE_SOURCES.items():
        cs.store(group="candidates", name=f"{source}_schema", node=src)
    OmegaConf.register_new_resolver("all_stages", lambda: [s.name for s in stages], replace=True)


def from_stored(config_yaml: str):
    """The typed config of a run file (its root ``config`` attribute); keys the schema does not know (a file
    written by an older version) are left out, missing sections take their defaults."""
    data = yaml.safe_load(config_yaml or "") or {}
    node = OmegaConf.structured(ScreenConfig)
    source = (data.get("candidates") or {}).get("source", "builtin")
    node.candidates = OmegaConf.structured(CANDIDATE_SOURCES.get(source, BuiltinCandidates))
    known = {}
    for f in fields(ScreenConfig):
        if f.name not in data:
            continue
        value = data[f.name]
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k in node[f.name].keys()}
        known[f.name] = value
    return OmegaConf.to_object(OmegaConf.merge(node, known))
