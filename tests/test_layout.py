"""Imports run downward only: the layers of README's "How the code is laid out", read from the source itself."""

import ast
import re
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
    ["runner.stats"],  # torch-free statistics: the figures a task is judged by, their intervals, verdicts
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


# --- The map of the package (docs/layout.md, each folder's docstring) and the pointers in the code's own words ---

ROOT = PACKAGE.parent
LAYOUT = ROOT / "docs" / "layout.md"


def modules():
    """Every module of the package as (its folder relative to runner/, its name), __init__.py files left out."""
    return [
        (path.parent.relative_to(PACKAGE).as_posix(), path.stem)
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__init__.py"
    ]


def named(text, name):
    return f"{name}.py" in text or f"`{name}`" in text


def test_docs_layout_names_every_module_in_its_folders_row():
    rows = [line for line in LAYOUT.read_text().splitlines() if line.startswith("|")]
    missing = []
    for folder, name in modules():
        top = "runner/" if folder == "." else f"runner/{folder.split('/')[0]}/"
        own = [row for row in rows if top in row or (folder == "." and "`runner/__init__.py`" in row)]
        if not own or not any(named(row, name) for row in own):
            missing.append(f"{folder}/{name}.py")
    assert not missing, f"docs/layout.md's table does not name these modules in their folder's row: {missing}"


def test_each_folders_docstring_names_its_modules():
    missing = []
    for folder, name in modules():
        if folder == ".":
            continue
        doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text())) or ""
        if not named(doc, name):
            missing.append(f"{folder}/{name}.py")
    assert not missing, f"these modules are not named in their folder's __init__.py docstring: {missing}"


def defined(module):
    """The names a module defines or imports at its top level."""
    names = set()
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def pointers():
    """Each pointer to a module (a folder of the package, a slash and a module, then `.py` or `.name`; or runner/
    and a top-level module) that the package, its docs, configs and benchmarks write in their own words, as (where,
    the text, the module file, the name or None). The tests are left out: their paths name folders of runs."""
    folders = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE)
    folders = sorted({f.rsplit("/", 1)[0] for f in folders}, key=len, reverse=True)
    pattern = re.compile(
        r"(?<![\w./-])(?:runner/)?(" + "|".join(map(re.escape, folders)) + r")/(\w+)(?:\.py)?(?:\.(\w+))?\b"
    )
    top = re.compile(r"(?<![\w./-])runner/(\w+)\.py\b")
    sources = [
        *PACKAGE.rglob("*.py"),
        *ROOT.glob("docs/*.md"),
        ROOT / "README.md",
        *ROOT.glob("configs/**/*.yaml"),
        *ROOT.glob("benchmarks/*.py"),
        *ROOT.glob("hydra_plugins/**/*.py"),
    ]
    for source in sources:
        for number, line in enumerate(source.read_text().splitlines(), 1):
            where = f"{source.relative_to(ROOT)}:{number}"
            for match in pattern.finditer(line):
                folder, name, attr = match.groups()
                if (PACKAGE / folder / name).is_dir():
                    yield where, match.group(0), PACKAGE / folder / name / "__init__.py", attr
                else:
                    yield where, match.group(0), PACKAGE / folder / f"{name}.py", attr
            for match in top.finditer(line):
                yield where, match.group(0), PACKAGE / f"{match.group(1)}.py", None


def test_every_pointer_to_a_module_in_the_code_and_docs_resolves():
    pointed = list(pointers())
    # the precondition: the pattern finds the pointers this file knows are there
    assert any(text == "runner/training/loop.py" for _, text, _, _ in pointed)
    assert any(attr for _, _, _, attr in pointed)
    stale = [
        f"{where}: {text}"
        for where, text, module, attr in pointed
        if not module.is_file() or (attr is not None and attr != "py" and attr not in defined(module))
    ]
    assert not stale, f"pointers to a module or name that does not exist: {stale}"


def test_setuptools_ships_every_package():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    assert packages <= listed, f"pyproject.toml's [tool.setuptools] packages leaves out {sorted(packages - listed)}"
