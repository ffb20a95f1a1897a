"""The package's shape: wings whose imports run one way, and heavy libraries where they belong."""

import ast
from pathlib import Path

import charrnn

PACKAGE = Path(charrnn.__file__).parent

# The wings from the bottom up: a module may import (at run time) from its own wing and the ones
# below it, never from one above. `charrnn.X` names a module at the package's top.
WINGS = [
    {"errors", "display", "version"},  # the leaves every wing may use
    {"settings"},  # the option table and typed configs
    {"core"},  # vocabulary, streams, model, sampling rules
    {"store"},  # checkpoints, out folders, corpora, the cache
    {"run"},  # training
    {"inspect"},  # viz, plot
    {"api", "arguments", "__init__"},  # the package's face
    {"cli"},  # the command line
    {"__main__"},
]


def _wing(module: str) -> int | None:
    """The height of a dotted module name under charrnn ("core.model" -> 2, "errors" -> 0); None
    for a module of no wing."""
    first = module.split(".")[0]
    return next((height for height, wing in enumerate(WINGS) if first in wing), None)


def _modules() -> dict[str, Path]:
    """Every module of the package by its dotted name under charrnn ("core.model")."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)] = path
    return found


def _type_checking_only(tree: ast.Module) -> set[int]:
    """The import nodes under `if TYPE_CHECKING:` (they never run)."""
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            guarded |= {id(inner) for inner in ast.walk(node)}
    return guarded


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(module under charrnn, imported at top level?) for each run-time `charrnn` import in a file."""
    tree = ast.parse(path.read_text())
    top_level, guarded = {id(node) for node in tree.body}, _type_checking_only(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or id(node) in guarded or not node.module:
            continue
        if node.module == "charrnn":  # a top-level module, or a name defined in __init__
            names = [a.name if (PACKAGE / f"{a.name}.py").exists() else "__init__" for a in node.names]
        elif node.module.startswith("charrnn."):
            below = node.module.removeprefix("charrnn.")
            names = [f"{below}.{a.name}" if (PACKAGE / below / f"{a.name}.py").exists() else below for a in node.names]
        else:
            continue
        found += [(name, id(node) in top_level) for name in names]
    return found


def test_every_module_belongs_to_a_wing():
    for module in _modules():
        assert _wing(module) is not None, module


def test_imports_run_one_way_between_wings():
    for module, path in _modules().items():
        for imported, _ in _imports(path):
            assert _wing(imported) <= _wing(module), f"{module} imports {imported}, from a wing above it"


def test_the_package_face_imports_nothing_below_it_at_import_time():
    eager = {name for name, top in _imports(PACKAGE / "__init__.py") if top}
    assert eager <= {"version"}, eager


def _imports_torch_at_once(module: str, modules: dict[str, Path], seen: set[str]) -> bool:
    """Whether importing `module` imports torch: itself at top level, or through a module it imports so."""
    seen.add(module)
    tree = ast.parse(modules[module].read_text())
    for node in tree.body:
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            return True
    eager = [name for name, top in _imports(modules[module]) if top and name not in seen]
    return any(_imports_torch_at_once(name, modules, seen) for name in eager if name in modules)


def test_the_command_line_imports_no_torch_until_a_command_runs():
    modules = _modules()
    assert not _imports_torch_at_once("cli.commands", modules, set())
    assert _imports_torch_at_once("run.training", modules, set())  # the check can see torch


def test_only_progress_uses_tqdm_and_only_the_command_line_wing_uses_click():
    for module, path in _modules().items():
        source = path.read_text()
        assert ("import tqdm" in source or "from tqdm" in source) == (module == "run.progress"), module
        if "import click" in source:
            assert module.startswith("cli."), module


# What `charrnn sample` imports: none of these may import torch outside a function (sampling
# runs in numpy; importing torch would cost more than the whole sample).
TORCH_FREE = {
    "api",
    "store.checkpoint",
    "store.checkpoint_file",
    "store.loading",
    "store.outdir",
    "settings.cells",
    "settings.config",
    "core.nearest",
    "core.numpy_model",
    "core.sampling",
    "core.threads",
    "core.vocab",
}


def test_the_sampling_path_imports_no_torch_at_top_level():
    modules = _modules()
    for module in TORCH_FREE:
        tree = ast.parse(modules[module].read_text())
        imported = [
            alias.name if isinstance(node, ast.Import) else node.module
            for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in (node.names if isinstance(node, ast.Import) else [None])
        ]
        assert not [name for name in imported if name and name.split(".")[0] == "torch"], module
