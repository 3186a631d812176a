"""Dependencies run one way: no module imports from a higher layer than its own.

Every module of the package is parsed with ``ast``; every import counts, also one inside a function.
Modules of the same layer may import each other. The table is the one in README.md (Contributing).
"""

import ast
from pathlib import Path

import pytest

import betenet

PACKAGE = Path(betenet.__file__).parent

#: Package (or module) → layer; the longest matching prefix decides.
LAYERS = {
    "betenet": 0,             # the package itself (betenet/__init__.py: its version)
    "betenet.errors": 0,      # support modules for every layer, each listed by name
    "betenet.runtime": 0,
    "betenet.files": 0,
    "betenet.validation": 0,
    "betenet.locks": 0,
    "betenet.progress": 0,
    "betenet.conf": 0,        # the shipped YAML (conf/, installed as betenet.conf) and its folder
    "betenet.physics": 1,     # units, a2F properties, Eliashberg, k/q grids
    "betenet.data": 2,        # structures, spectra, graphs, sources, splits, the data module
    "betenet.phonons": 2,     # site PhDOS from ML potentials (a data source of the node attributes)
    "betenet.pretrained": 2,  # per-atom features of universal potentials (node attributes)
    "betenet.dft": 2,         # Quantum ESPRESSO pipeline that writes datasets
    "betenet.config": 2,      # the shipped Hydra configuration and its resolvers
    "betenet.models": 3,      # network, losses, LightningModule, baselines
    "betenet.training": 4,    # one member: run folder, tempering, checkpoints, sweeps
    "betenet.inference": 5,   # ensembles of trained members, predictions
    "betenet.evaluation": 5,  # metrics, predictions, reports, screening, landscapes
    "betenet.cli": 6,         # the `betenet` command
    "betenet.train": 6,       # the Hydra training entry (`python -m betenet.train`)
}


def layer_of(module: str) -> int:
    """The layer of the longest listed prefix of ``module``; the package's own entry covers only itself, so a new
    top-level module or package has no layer until it is listed."""
    parts = [p for p in module.split(".") if not p.startswith("__")]  # betenet.__version__ is the package's
    module = ".".join(parts)
    for n in range(len(parts), 1, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    if module == "betenet":
        return LAYERS["betenet"]
    raise KeyError(module)


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every betenet import in ``source`` (the text of ``module``),
    relative imports resolved; ``from pkg import x`` names ``pkg.x`` when ``pkg`` is betenet itself or
    given only by dots (then ``x`` is a module)."""
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base == "betenet" or node.module is None:
                out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            else:
                out.append((node.lineno, base))
    return [(line, mod) for line, mod in out if mod == "betenet" or mod.startswith("betenet.")]


def imports_of(path: Path) -> list[tuple[int, str]]:
    return imported_modules(path.read_text(), module_name(path), path.name == "__init__.py")


def all_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_layer():
    missing = [module_name(p) for p in all_modules() if not _has_layer(module_name(p))]
    assert not missing, f"add these to LAYERS (and README's table): {missing}"


def test_an_unlisted_package_has_no_layer():
    """The test above can fail: a new top-level package or module is not covered by the package's entry."""
    for name in ("betenet.newpackage", "betenet.newpackage.module", "betenet.newmodule"):
        assert not _has_layer(name)
    assert _has_layer("betenet") and _has_layer("betenet.data.graphs")


def _has_layer(module: str) -> bool:
    try:
        layer_of(module)
    except KeyError:
        return False
    return True


def test_no_import_from_a_higher_layer():
    upward = []
    for path in all_modules():
        here = module_name(path)
        for line, target in imports_of(path):
            if layer_of(target) > layer_of(here):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} {here} (layer {layer_of(here)}) "
                              f"imports {target} (layer {layer_of(target)})")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_support_modules_import_nothing_above_them():
    for name in [m.rpartition(".")[2] for m, layer in LAYERS.items() if layer == 0 and m != "betenet"]:
        path = PACKAGE / f"{name}.py"
        if path.exists():
            assert all(layer_of(t) == 0 for _, t in imports_of(path)), name


@pytest.mark.parametrize("source, expected", [
    ("from . import units", ["betenet.physics.units"]),
    ("from .units import BinGrid", ["betenet.physics.units"]),
    ("from ..data import graphs", ["betenet.data"]),
    ("from betenet import cli", ["betenet.cli"]),
    ("def f():\n    import betenet.training.run_dir as r\n    import numpy", ["betenet.training.run_dir"]),
])
def test_imports_are_found_and_resolved(source, expected):
    assert [m for _, m in imported_modules(source, "betenet.physics.probe")] == expected


def test_readme_layout_names_every_package_and_module():
    """README's Layout section lists each top-level module and subpackage of betenet, and nothing else."""
    readme = (PACKAGE.parent / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    listed = set()
    for line in block.splitlines():
        line = line.split("betenet/", 1)[-1]
        listed |= {tok for tok in line.split() if tok.endswith((".py", "/")) and tok[0].islower()}
    shipped = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    shipped |= {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    top_level = {"train.py", "conf/", "betenet/", "experiments/", "benchmarks/", "tests/", "sources/", "data/",
                 "model/", "variant/", "trainer/", "logger/", "callbacks/", "paths/", "cluster/", "experiment/",
                 "hydra/launcher/", "dft/", "features/", "(net/)"}
    assert shipped <= listed, f"missing from README's layout: {sorted(shipped - listed)}"
    unknown = sorted(listed - shipped - top_level)
    assert not unknown, f"in README's layout but not in betenet/: {unknown}"


def _import_graph(level: int | None = None) -> dict[str, set[str]]:
    """module → the betenet modules it imports (``level`` 2: packages ``betenet.<x>`` instead of modules)."""
    modules = {module_name(p) for p in all_modules()}
    edges: dict[str, set[str]] = {}
    for path in all_modules():
        here = module_name(path)
        for _, target in imports_of(path):
            while target not in modules and "." in target:  # ``from pkg import name``: the module holding it
                target = target.rpartition(".")[0]
            a, b = (".".join(m.split(".")[:level]) for m in (here, target)) if level else (here, target)
            if a != b and not a.startswith(b + "."):  # a package's own __init__ is not a loop
                edges.setdefault(a, set()).add(b)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``edges`` (as a path), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("level", [None, 2], ids=["modules", "packages"])
def test_no_import_loop(level):
    """Every import counts, also one inside a function: a loop between modules, or between the packages of one
    layer (data ↔ phonons), makes either impossible to understand, test or move without the other."""
    cycle = _cycle(_import_graph(level))
    assert cycle is None, "import loop: " + " → ".join(cycle)


def test_a_loop_is_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None
