"""The package's shape: imports flow one way, and heavy libraries stay where they belong."""

import ast
from pathlib import Path

import charrnn

PACKAGE = Path(charrnn.__file__).parent

# Each module may import only the modules listed (cli -> train/sample -> model/data/... -> errors).
ALLOWED = {
    "__init__": {"api"},
    "__main__": {"cli"},
    "errors": set(),
    "arguments": {"display", "errors", "options"},
    "display": set(),
    "options": set(),
    "config": {"budget", "errors", "options"},
    "stdio": {"display"},
    "params": {"budget", "display", "files", "options"},
    "budget": set(),
    "diagnosis": {"options"},
    "sizing": {"budget", "config", "data", "errors", "files", "options"},
    "metrics": {"display", "errors", "files", "runfiles"},
    "runfiles": {"display", "errors", "files", "options"},
    "plot": {"__init__", "diagnosis", "display", "errors", "metrics", "output"},
    "output": {"display", "errors", "files", "options"},
    "nearest": {"errors", "options"},
    "vocab": {"errors", "nearest", "options"},
    "files": set(),
    "cache": {"display", "errors", "files"},
    "stdlib_corpus": {"files"},
    "corpus": {"cache", "display", "errors", "files", "options", "runfiles", "stdlib_corpus"},
    "encoded": {"cache", "corpus", "display", "errors", "files", "vocab"},
    "prepare": {
        "checkpoint",
        "config",
        "corpus",
        "display",
        "encoded",
        "errors",
        "metrics",
        "nearest",
        "options",
        "outdir",
        "preview",
        "runfiles",
        "sizing",
        "vocab",
    },
    "data": {"errors", "options"},
    "distributed": {"display", "errors", "options"},
    "model": {"config"},
    "runtime": {"config", "errors", "options", "threads"},
    "threads": {"errors", "options"},
    "checkpoint": {"budget", "checkpoint_file", "config", "display", "errors", "files", "options", "vocab"},
    "checkpoint_file": {"display", "errors", "files"},
    "outdir": {"checkpoint", "checkpoint_file", "display", "errors", "files", "metrics", "options", "runfiles"},
    "optim": {"budget", "config"},
    "evaluate": {"corpus", "data", "display", "encoded", "errors", "metrics", "model", "nearest", "threads", "vocab"},
    "progress": {"budget", "display", "metrics"},
    "preview": {"config", "display", "errors", "files", "metrics", "model", "runfiles", "sample", "vocab"},
    "training": {
        "__init__",
        "budget",
        "checkpoint",
        "config",
        "data",
        "diagnosis",
        "distributed",
        "errors",
        "evaluate",
        "metrics",
        "model",
        "optim",
        "options",
        "outdir",
        "prepare",
        "preview",
        "progress",
        "runtime",
        "sizing",
        "threads",
    },
    "numpy_model": {"config"},
    "trace": {"nearest", "numpy_model", "vocab"},
    "cell_roles": {"vocab"},
    "reach": {"model", "threads"},
    "page": {"__init__", "display", "output"},
    "viz": {
        "cell_roles",
        "config",
        "corpus",
        "display",
        "encoded",
        "errors",
        "reach",
        "nearest",
        "outdir",
        "page",
        "sample",
        "threads",
        "trace",
    },
    "session": {"display", "options", "sample"},
    "sample": {
        "checkpoint",
        "config",
        "display",
        "errors",
        "model",
        "numpy_model",
        "options",
        "outdir",
        "output",
        "threads",
        "vocab",
    },
    "api": {
        "arguments",
        "checkpoint",
        "config",
        "corpus",
        "diagnosis",
        "errors",
        "evaluate",
        "metrics",
        "model",
        "nearest",
        "options",
        "outdir",
        "output",
        "progress",
        "runtime",
        "sample",
        "threads",
        "training",
    },
    "cli": {
        "__init__",
        "arguments",
        "files",
        "runfiles",
        "budget",
        "config",
        "corpus",
        "display",
        "errors",
        "checkpoint",
        "checkpoint_file",
        "metrics",
        "options",
        "outdir",
        "params",
        "plot",
        "progress",
        "runtime",
        "api",
        "sample",
        "session",
        "stdio",
        "page",
        "viz",
    },
}
# Modules the CLI may import only inside a command (they import torch).
LAZY_FOR_CLI = {
    "checkpoint",
    "checkpoint_file",
    "corpus",
    "encoded",
    "evaluate",
    "outdir",
    "prepare",
    "preview",
    "progress",
    "runtime",
    "sample",
    "training",
    "api",
    "page",
    "viz",
}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(internal module, imported at top level?) for each `charrnn` import in a file."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "charrnn":
            if "." in node.module:
                names = [node.module.split(".")[1]]
            else:  # `from charrnn import x`: a submodule, or a name defined in __init__
                names = [a.name if (PACKAGE / f"{a.name}.py").exists() else "__init__" for a in node.names]
            found += [(name, id(node) in top_level) for name in names]
    return found


def test_every_module_is_accounted_for():
    assert {p.stem for p in PACKAGE.glob("*.py")} == set(ALLOWED)


def test_imports_flow_one_way():
    for module, allowed in ALLOWED.items():
        imported = {name for name, _ in _imports(PACKAGE / f"{module}.py")}
        assert imported <= allowed, f"{module} imports {imported - allowed}"


def test_the_cli_imports_torch_users_lazily():
    eager = {name for name, top in _imports(PACKAGE / "cli.py") if top}
    assert not eager & LAZY_FOR_CLI, eager & LAZY_FOR_CLI


def test_only_progress_uses_tqdm_and_only_the_command_line_uses_click():
    for path in PACKAGE.glob("*.py"):
        source = path.read_text()
        assert ("import tqdm" in source or "from tqdm" in source) == (path.stem == "progress"), path.stem
        assert ("import click" in source) == (path.stem in ("cli", "params")), path.stem


# What `charrnn sample` imports: none of these may import torch outside a function (sampling
# runs in numpy; importing torch would cost more than the whole sample).
TORCH_FREE = {
    "api",
    "checkpoint",
    "checkpoint_file",
    "config",
    "nearest",
    "numpy_model",
    "outdir",
    "sample",
    "threads",
    "vocab",
}


def test_the_sampling_path_imports_no_torch_at_top_level():
    for module in TORCH_FREE:
        tree = ast.parse((PACKAGE / f"{module}.py").read_text())
        imported = [
            alias.name if isinstance(node, ast.Import) else node.module
            for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in (node.names if isinstance(node, ast.Import) else [None])
        ]
        assert not [name for name in imported if name and name.split(".")[0] == "torch"], module
