"""The package layering of DESIGN.md holds at import time: the model package and the shared base
import without the simulator, and no library module imports the command line."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _run(code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.timeout(150)
def test_world_model_imports_without_the_simulator():
    r = _run("import world_model, world_model.train, world_model.pretrain, world_model.probe, world_model.feature_cache, sys; "
             "bad = [m for m in ('gymnasium', 'mujoco', 'envs', 'planning', 'simjepa_cli') if m in sys.modules]; "
             "assert not bad, bad")
    assert r.returncode == 0, r.stderr[-2000:]


def test_shared_base_has_no_side_effects():
    r = _run("import os, sys, simjepa_core.errors, simjepa_core.atomic, simjepa_core.episodes; "
             "bad = [m for m in ('gymnasium', 'mujoco', 'envs', 'torch', 'world_model') if m in sys.modules]; "
             "assert not bad, bad; assert 'MUJOCO_GL' not in os.environ")
    assert r.returncode == 0, r.stderr[-2000:]


def test_the_import_check_can_fail():
    """The subprocess check above does catch a package that pulls in the simulator."""
    r = _run("import envs, sys; assert 'gymnasium' not in sys.modules")
    assert r.returncode != 0


def _imported_modules(path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_dependencies_point_one_way():
    """envs and world_model know nothing of each other or of planning; no library module imports the CLI."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    forbidden = {"simjepa_core": {"envs", "world_model", "planning", "simjepa_cli"},
                 "envs": {"world_model", "planning", "simjepa_cli"},
                 "world_model": {"envs", "planning", "simjepa_cli"},
                 "planning": {"simjepa_cli"}}
    found = [f"{py.relative_to(root)} imports {m}" for pkg, bad in forbidden.items()
             for py in sorted((root / pkg).rglob("*.py")) for m in sorted(_imported_modules(py) & bad)]
    assert not found, found
    assert "world_model" in _imported_modules(root / "planning" / "agent.py")  # the scan does see imports
