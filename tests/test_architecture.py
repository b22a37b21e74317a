"""The layout the README promises: small modules, the HDF5 file behind the store alone, no import cycle, kernels free
of I/O and config, and a stage table whose rows the store can write."""

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from engine.io.store import ResultStore, row_columns
from engine.stages import STAGES
from tests.conftest import ROOT

PACKAGES = ("engine", "kernels")
MODULES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


NAMES = {module_name(p): p for p in MODULES}


def imported_modules(path: Path) -> set[str]:
    """Modules of this project that ``path`` imports, anywhere in the file (function-level imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out |= {n for n in names if n in NAMES}
    return out


def test_no_module_over_350_lines():
    long = {str(p.relative_to(ROOT)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 350}
    assert not long, long


def test_only_the_store_touches_hdf5():
    users = [str(p.relative_to(ROOT)) for p in MODULES if "h5py" in {
        n.split(".")[0] for n in _all_imports(p)} and p.name != "store.py"]
    assert not users, users


def _all_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_kernels_are_free_of_io_config_and_the_engine():
    for p in (ROOT / "kernels").rglob("*.py"):
        roots = {n.split(".")[0] for n in _all_imports(p)}
        assert not roots & {"engine", "h5py", "hydra", "omegaconf", "yaml", "json"}, (p.name, roots)


def test_no_import_cycle():
    graph = {name: imported_modules(path) - {name} for name, path in NAMES.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_one_runner_owns_the_chunk_loop():
    """No module but the runner (``engine.run.Run.run_chunks``) writes rows from inside a loop: a stage gives the
    computation of one chunk, the runner chunks, appends and reports progress. (relax and md stream rows from the
    batched runners' callbacks, one call each.)"""
    loops = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.For, ast.While, ast.comprehension)):
                loops += [f"{module_name(path)}:{sub.lineno}" for sub in ast.walk(node)
                          if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute)
                          and sub.func.attr == "append_rows"]
    assert [loop for loop in loops if not loop.startswith("engine.run:")] == []
    assert loops, "the runner's loop itself should be found"


def test_the_model_layer_and_core_import_no_stage():
    """``engine.models`` and ``engine.core`` sit under every stage: they import only each other and the kernels."""
    below = ("engine.models", "engine.core", "kernels")
    wrong = {name: sorted(m for m in imported_modules(path) if not m.startswith(below))
             for name, path in NAMES.items() if name.startswith(("engine.models", "engine.core"))}
    assert {k: v for k, v in wrong.items() if v} == {}


def test_stage_modules_do_not_import_each_other():
    stage_modules = {s.run.__module__ for s in STAGES}
    for name in stage_modules:
        assert not imported_modules(NAMES[name]) & (stage_modules - {name}), name


def test_every_stage_has_a_conf_group_or_section_and_a_writable_row(tmp_path):
    """Each stage's row dataclass round-trips through the store with its default values."""
    with ResultStore(tmp_path / "rows.h5") as store:
        for stage in STAGES:
            assert (ROOT / "conf" / stage.name).is_dir(), stage.name
            fields = {f.name for f in dataclasses.fields(stage.row)}
            assert {"id", "status", "reason"} <= fields
            row = stage.row("x", "fail", "why")
            for name, tp in row_columns(stage.row):  # fixed-width arrays need a width: give every array one
                if tp is np.ndarray and np.asarray(getattr(row, name)).size == 0:
                    setattr(row, name, np.full(2, np.nan))
            store.append_rows(stage.name, [row])
            assert store.ids(stage.name) == ["x"] and store.column(stage.name, "status")[0] == "fail"
            written = set(store.column_names(stage.name)) | ({"structure"} if store.exists(f"{stage.name}/structure")
                                                            else set())
            assert written == fields, (stage.name, written ^ fields)


def test_importing_the_engine_in_a_notebook_is_quiet():
    """No library notice on the terminal when a notebook imports the store and the report (torch's jit deprecation,
    Warp's CUDA-driver line)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import engine.io.store, engine.io.report"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == "", out.stderr


def test_engine_is_packages_per_stage_family_with_few_top_level_modules():
    top = sorted(p.name for p in (ROOT / "engine").glob("*.py"))
    assert len(top) <= 12, top
    for pkg in (ROOT / "engine").iterdir():
        if pkg.is_dir() and (pkg / "__init__.py").exists():
            doc = ast.get_docstring(ast.parse((pkg / "__init__.py").read_text()))
            assert doc and len(doc) > 40, f"{pkg.name}/__init__.py says nothing about its concept"


def test_no_private_name_is_imported_across_modules():
    offenders = []
    for path in [*MODULES, *(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                offenders += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert not offenders, offenders


def test_the_readme_is_short_and_opens_with_the_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 12_000
    block = text[text.index("```bash"):text.index("```", text.index("```bash") + 3)]
    assert "bash setup.sh" in block and "-m engine.screen" in block and "-m pytest -q" in block
    assert "setup.sh" in (ROOT / ".ci" / "run").read_text() and "-m pytest -q" in (ROOT / ".ci" / "run").read_text()
