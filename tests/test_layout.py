"""The package's shape, as README's map draws it: imports flow one way, from the top layer down, and no
module grows past the size where it usually holds two concepts."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tinytransformer"
# README's map, from the ground up: a module may import only from its own layer or the layers before it.
LAYERS = [
    {"rng", "allocator", "validation", "extras"},
    {"kernels"},
    {"autograd"},
    {"gradcheck"},
    {"data"},
    {"optim"},
    {"nn"},
    {"models", "reference"},
    {"metrics", "baselines"},
    {"generation"},
    {"plots"},
    {"interpret"},
    {"training"},
    {"exercises"},
    {"tasks"},
    {"cli", "__main__", "__init__"},
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}
MAX_LINES = 400


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _top(path):
    """The first component below the package: 'nn' for nn/attention.py, 'cli' for cli.py."""
    part = path.relative_to(PACKAGE).parts[0]
    return part[:-3] if part.endswith(".py") else part


def _imported_tops(path):
    """The top-level parts of the package that ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 for a module at the top of the package
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.startswith("tinytransformer."):
                    yield node.module.split(".")[1]
                continue
            up = node.level - 1  # "." is the module's own folder
            if up > depth:
                continue
            here = list(path.relative_to(PACKAGE).parts[:-1])[: depth - up]
            target = here + (node.module.split(".") if node.module else [])
            if target:
                yield target[0]
            else:  # "from .. import x": x itself is the top-level part
                yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tinytransformer."):
                    yield alias.name.split(".")[1]


def test_every_top_level_part_has_a_layer():
    tops = {_top(p) for p in _modules()}
    assert tops <= set(LEVEL), f"add to LAYERS (and README's map): {sorted(tops - set(LEVEL))}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path):
    mine = _top(path)
    upward = [t for t in set(_imported_tops(path)) if t in LEVEL and LEVEL[t] > LEVEL[mine]]
    assert not upward, f"{path.relative_to(PACKAGE)} ({mine}) imports from layers above it: {upward}"


def test_no_module_past_the_size_of_one_concept():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text(encoding="utf-8").splitlines()) for p in _modules()}
    assert not {p: n for p, n in sizes.items() if n > MAX_LINES}
