"""deep/'s folders are layers (storage and envs, algorithms, generation, the commands): no import runs upward."""

from __future__ import annotations

import ast
from pathlib import Path

DEEP = Path(__file__).resolve().parents[2] / "deep"
LAYERS = {"storage": 1, "envs": 1, "algorithms": 2, "generation": 3}
TOP = 4  # deep/*.py: train, collect, sweep, report, settings


def layer(module: str) -> int:
    """The layer of a ``deep.`` module: its folder's, or the top for the modules at deep/'s root."""
    parts = module.split(".")
    return LAYERS.get(parts[1], TOP) if len(parts) > 2 or parts[1] in LAYERS else TOP


def deep_imports(path: Path) -> set[str]:
    """Every ``deep.*`` module imported anywhere in a file (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("deep."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("deep.")}
    return found


def test_no_module_of_deep_imports_a_higher_layer():
    """Every import of a deep/ module points to its own layer or a lower one."""
    upward = []
    for path in sorted(DEEP.rglob("*.py")):
        module = "deep." + ".".join(path.relative_to(DEEP).with_suffix("").parts)
        upward += [f"{module} -> {target}" for target in deep_imports(path) if layer(target) > layer(module)]
    assert upward == []


def test_every_module_sits_in_a_layer_folder_or_is_a_command():
    """deep/'s root holds only the commands and their settings; everything else lives in a layer folder."""
    root = sorted(path.stem for path in DEEP.glob("*.py"))
    assert root == ["__init__", "collect", "report", "settings", "sweep", "train"]
    assert {path.name for path in DEEP.iterdir() if path.is_dir() and path.name != "__pycache__"} == {
        *LAYERS,
        "behavior",
    }


def test_the_layer_of_a_module_is_read_from_its_path():
    assert layer("deep.storage.datasets") == layer("deep.envs.tasks") == 1
    assert layer("deep.algorithms.omar") == 2 and layer("deep.generation.matd3") == 3 and layer("deep.train") == TOP
