"""Imports run downward only: the layers of README's "How the code is laid out", read from the source itself."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "runner"

# Top to bottom: folders, each a concept (docs/layout.md). A module may import its own layer and the layers
# below, never one above; within a layer, no circle.
LAYERS = [
    # the command line (and the package's API), and Hydra's task that runs each command's job
    ["runner", "runner.__main__", "runner.cli", "runner.task"],
    # the commands runner --help lists; the sweeps (grid, Optuna search, a sweep's jobs and summary, repeats)
    ["runner.commands", "runner.sweeps"],
    # a training job's own steps around the loop, which use run directories and restore models
    ["runner.training.finish", "runner.training.init_from", "runner.training.setup", "runner.training.setup_data"],
    ["runner.run"],  # the run directory: its one writer, the read side, resume decisions
    ["runner.inference"],  # the model card, loading a run's model, the predictor, export formats
    ["runner.config"],  # the command line before Hydra, config checks and resolvers
    ["runner.training"],  # the loop, its recipe, state and seeding, schedules, builders, device, metrics, torchrun
    ["runner.data", "runner.models", "runner.loggers"],  # the parts a config names
    ["runner.io"],  # errors, files, serialization, console, plots, signals, environment
]


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(name):
    for i, layer in enumerate(LAYERS):
        if any(name == unit or name.startswith(unit + ".") for unit in layer if unit != "runner") or name == "runner":
            return i
    raise AssertionError(f"{name} is in no layer of tests/test_layout.py: add it where it belongs")


def type_only(tree):
    """The nodes under `if TYPE_CHECKING:`: imports for annotations, which never run (a Job's field may name the
    ModelCard of a layer above it without the loop importing it)."""
    return {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for statement in node.body
        for inner in ast.walk(statement)
    }


def imports():
    """{module: set of runner modules it imports}, function-level imports included, imports for annotations alone
    (under `if TYPE_CHECKING:`) left out."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name, found = module_name(path), set()
        tree = ast.parse(path.read_text())
        skipped = type_only(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("runner"):
                found |= {
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}".replace(".", "/") in known() else node.module
                    for a in node.names
                }
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("runner")}
        graph[name] = {m for m in found if m != name}
    return graph


def known():
    return {module_name(p).replace(".", "/") for p in PACKAGE.rglob("*.py")}


def test_no_module_imports_one_above_it():
    upward = [f"{m} imports {i}" for m, deps in imports().items() for i in deps if layer_of(i) < layer_of(m)]
    assert not upward, upward


def test_no_import_circle():
    graph, done = imports(), set()

    def visit(node, path):
        if node in path:
            raise AssertionError("import circle: " + " -> ".join([*path[path.index(node) :], node]))
        if node not in done:
            for dep in graph.get(node, ()):
                visit(dep, [*path, node])
            done.add(node)

    for module in graph:
        visit(module, [])


def test_imports_for_annotations_alone_are_told_apart():
    source = "import runner.io\nif TYPE_CHECKING:\n    from runner.cli import main\nfrom runner.run import rundir\n"
    tree = ast.parse(source)
    skipped = type_only(tree)
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else node.names[0].name: id(node) in skipped
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    }
    assert imported == {"runner.io": False, "runner.cli": True, "runner.run": False}


def test_the_layers_name_every_module():
    for path in PACKAGE.rglob("*.py"):
        layer_of(module_name(path))
