"""The package layout of DESIGN §1, checked on the source itself.

Every file under ``src/segdice`` is parsed with :mod:`ast`; top-level, in-function and ``TYPE_CHECKING``
imports all count (a lazy import is still a dependency). The rules are the tables right below: a new
package (``comparison/``, ``integrations/``) or module (``metrics/instances.py``) needs no edit here
unless it changes the arrows, and a package that is in no table is itself an error, so the arrows are
decided when the package is born rather than discovered later.

A "unit" below is what the arrows talk about: the first name after ``segdice.`` (``segdice.metrics.overlap``
belongs to ``metrics``; ``segdice/metrics/__init__.py`` too), or ``segdice`` itself for the root
``__init__.py``. The rules:

- ``private-name``: no module imports (or reads as ``module._name``) another module's underscored name.
- ``private-module``: a private module (``_x``) is imported only from inside its own unit; the root helpers
  (``HELPERS``) are free for all.
- ``arrow``: a unit imports only the units ``ARROWS`` allows it (helpers are always allowed).
- ``unknown-package``: every unit under ``src/segdice`` appears in ``ARROWS``.
- ``root-eager``: the root ``__init__.py`` imports at module level only ``ROOT_EAGER``; everything else it
  names lazily (PEP 562 ``__getattr__``).
- ``cycle``: the units form no import cycle.
- ``shadowing``: a function never has its module's name, and a package ``__init__`` never binds the name of
  one of its own submodules to something else (``segdice.evaluate`` the function hiding the module).
- ``import segdice`` (fresh interpreter) loads nothing in ``NOT_LOADED_BY_IMPORT``; the CLI's ``--help`` and
  ``--version`` load nothing in ``NOT_LOADED_BY_CLI_HELP``.
"""

from __future__ import annotations

import ast
import itertools
import os
import subprocess
import sys
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
TOP = "segdice"
ROOT = "segdice"  # the unit of the root package's own __init__.py

# --- the rules (data) ------------------------------------------------------------------------------------


class AllBut(frozenset):
    """Every unit except these (``AllBut()`` is every unit)."""


# Root modules shared by two or more units: anyone may import them (but not their underscored names).
HELPERS = frozenset({"_checks", "_arrays", "_lazy", "_progress", "_version"})

# unit -> the units it may import. The agreed arrows of HELPERS.md / DESIGN §1: data flows
# files -> io -> arrays -> stats -> metrics -> evaluation -> report; demo and cli sit on top.
ARROWS: Mapping[str, frozenset] = {
    **{helper: frozenset() for helper in HELPERS},  # helpers import only other helpers
    "stats": frozenset(),
    "losses": frozenset({"stats"}),
    "metrics": frozenset({"stats"}),
    "io": frozenset(),
    "report": frozenset({"io", "metrics", "stats"}),  # it receives plain data, never an evaluation
    "evaluation": frozenset({"stats", "metrics", "io", "report"}),
    "comparison": frozenset({"evaluation", "report", "io", "metrics", "stats"}),
    "integrations": frozenset({"metrics", "stats"}),
    "demo": AllBut({"cli"}),
    "cli": AllBut(),
    "__main__": AllBut(),
    ROOT: AllBut(),  # the root names anything, lazily (see ROOT_EAGER)
}

# What the root __init__ may import at module level: only what `import segdice` must not pay for
# anyway. Everything else is a PEP 562 lazy name, so that `segdice --help` (whose `segdice.cli` import runs
# the root __init__ first) loads no torch.
ROOT_EAGER = frozenset({"_checks", "_lazy", "_version"})

# Modules that a fresh `import segdice` must not load (a name covers its submodules).
NOT_LOADED_BY_IMPORT = (
    "segdice.evaluation",
    "segdice.report",
    "segdice.comparison",
    "segdice.demo",
    "scipy",
    "matplotlib",
)

# Modules that the command line's help and version must not load, and the commands that are checked.
NOT_LOADED_BY_CLI_HELP = ("torch",)
CLI_ARGUMENTS = (("--help",), ("--version",))


@dataclass(frozen=True)
class Rules:
    helpers: frozenset = HELPERS
    arrows: Mapping[str, frozenset] = field(default_factory=lambda: ARROWS)
    root_eager: frozenset = ROOT_EAGER


# --- the scanner -------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Violation:
    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] {self.message}"


@dataclass(frozen=True)
class ImportSite:
    path: str  # relative to the scanned source root
    line: int
    importer: str  # dotted name of the importing module
    target: str  # dotted name of the imported segdice module
    name: str | None  # the name taken from it; None when the module itself is imported
    lazy: bool  # inside a function body
    type_only: bool  # under `if TYPE_CHECKING:`


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def _module_names(src: Path) -> dict[str, Path]:
    modules = {}
    for path in sorted((src / TOP).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _FileScanner(ast.NodeVisitor):
    """Collects one file's imports (with their context), module aliases and private attribute reads."""

    def __init__(self, module: str, is_package: bool, rel: str, modules: Mapping[str, Path]):
        self.module, self.is_package, self.rel, self.modules = module, is_package, rel, modules
        self.imports: list[ImportSite] = []
        self.aliases: dict[str, str] = {}  # local name -> segdice module it is bound to
        self.attribute_reads: list[tuple[int, str, str]] = []  # (line, module, attribute)
        self.dynamic_imports = False
        self._depth = 0  # function nesting
        self._type_only = 0

    def _add(self, node: ast.AST, target: str, name: str | None) -> None:
        site = ImportSite(
            self.rel, node.lineno, self.module, target, name, self._depth > 0, self._type_only > 0
        )
        self.imports.append(site)

    def _absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join([*base, node.module] if node.module else base)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] != TOP:
                continue
            self._add(node, alias.name, None)
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                self.aliases[TOP] = TOP

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = self._absolute(node)
        if source.split(".")[0] != TOP:
            return
        for alias in node.names:
            if alias.name == "*":
                self._add(node, source, None)
            elif f"{source}.{alias.name}" in self.modules:
                self._add(node, f"{source}.{alias.name}", None)
                self.aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
            else:
                self._add(node, source, alias.name)

    def _visit_function(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _visit_function

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._type_only += 1
            for child in node.body:
                self.visit(child)
            self._type_only -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        # importlib.import_module("segdice.x") / __import__("segdice.x"): a lazy import by name.
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called in ("import_module", "__import__"):
            self.dynamic_imports = True
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                name = node.args[0].value
                if name.split(".")[0] == TOP:
                    self._add(node, name, None)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = []
        value: ast.expr = node
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in self.aliases and isinstance(node.ctx, ast.Load):
            module = self.aliases[value.id]
            for attr in reversed(chain):
                if f"{module}.{attr}" in self.modules:
                    module = f"{module}.{attr}"
                    continue
                if _is_private(attr):
                    self.attribute_reads.append((node.lineno, module, attr))
                break
            return  # the inner attributes of this chain were just walked
        self.generic_visit(node)


def _bound_names(tree: ast.Module) -> Iterable[tuple[ast.stmt, str]]:
    """Names a module binds at module level (descending into if/try blocks), with their statement."""
    pending = list(tree.body)
    while pending:
        stmt = pending.pop(0)
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield stmt, stmt.name
        elif isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                yield stmt, alias.asname or alias.name
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    yield stmt, target.id
        elif isinstance(stmt, ast.If | ast.Try):
            pending.extend(stmt.body + stmt.orelse + getattr(stmt, "finalbody", []))
            for handler in getattr(stmt, "handlers", []):
                pending.extend(handler.body)


def _find_cycles(edges: Mapping[str, Mapping[str, ImportSite]]) -> list[list[str]]:
    """One shortest cycle through each strongly connected group of units (Tarjan, then BFS)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, {})):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            connect(node)

    cycles = []
    for group in sorted(groups):
        start, members = group[0], set(group)
        parent: dict[str, str] = {}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            if start in edges.get(node, {}):
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                cycles.append([*reversed(path), start])
                break
            for succ in sorted(edges.get(node, {})):
                if succ in members and succ not in parent and succ != start:
                    parent[succ] = node
                    queue.append(succ)
    return cycles


def _allowed(rules: Rules, importer: str, target: str) -> bool:
    if target in rules.helpers:
        return True
    allowed = rules.arrows[importer]
    if isinstance(allowed, AllBut):
        return target not in allowed
    return target in allowed


def _import_violations(site: ImportSite, rules: Rules) -> Iterable[tuple[str, str]]:
    """The (rule, message) pairs one import breaks."""
    here, there = unit_of(site.importer), unit_of(site.target)
    parts = site.target.split(".")
    private_at = next((i for i, part in enumerate(parts) if i and _is_private(part)), None)
    if private_at is not None and parts[1] != here and not (private_at == 1 and parts[1] in rules.helpers):
        owner = (
            f"{TOP}.{parts[1]}"
            if private_at > 1
            else f"the root (shared: {', '.join(sorted(rules.helpers))})"
        )
        yield "private-module", f"imports {site.target}, private to {owner}, from {here!r}"
    if site.name is not None and _is_private(site.name):
        yield "private-name", f"imports the underscored name {site.name} from {site.target}"
    known = here in rules.arrows and there in rules.arrows
    if known and there != here and not _allowed(rules, here, there):
        imported = f"{site.target}.{site.name}" if site.name else site.target
        kind = "TYPE_CHECKING " if site.type_only else "in-function " if site.lazy else ""
        yield "arrow", f"{here} -> {there} ({kind}import of {imported}) is against the arrows"
    if here == ROOT and not site.lazy and not site.type_only and there not in rules.root_eager:
        yield (
            "root-eager",
            f"the root __init__ imports {site.target} at module level; name it lazily (PEP 562)",
        )


def _shadowing(module: str, tree: ast.Module, scanner: _FileScanner, modules: Mapping[str, Path]):
    """(line, message) for a function named as its module, or a package name hiding its own submodule."""
    own_name = module.rsplit(".", 1)[-1]
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == own_name:
            yield stmt.lineno, f"function {stmt.name}() has its module's name"
    if scanner.is_package:
        children = {name.rsplit(".", 1)[-1] for name in modules if name.rpartition(".")[0] == module}
        module_bindings = {(s.line, s.target.rsplit(".", 1)[-1]) for s in scanner.imports if s.name is None}
        for stmt, name in _bound_names(tree):
            if name in children and (stmt.lineno, name) not in module_bindings:
                yield stmt.lineno, f"binds {name!r}, hiding its own submodule {module}.{name}"


def _lazy_table_sites(tree: ast.Module, scanner: _FileScanner) -> list[ImportSite]:
    """In a file that calls import_module, every string naming a segdice module is a lazy import."""
    if not scanner.dynamic_imports:
        return []
    return [
        ImportSite(scanner.rel, node.lineno, scanner.module, node.value, None, True, False)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in scanner.modules and node.value != scanner.module
    ]


def scan(src: Path, rules: Rules | None = None) -> list[Violation]:
    """Every violation of the static rules in the package ``src/segdice``, sorted by file and line."""
    rules = rules or Rules()
    modules = _module_names(src)
    found: set[Violation] = set()
    edges: dict[str, dict[str, ImportSite]] = defaultdict(dict)  # unit -> unit -> first import site
    unknown: set[str] = set()

    for module, path in modules.items():
        rel = path.relative_to(src).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        scanner = _FileScanner(module, path.name == "__init__.py", rel, modules)
        scanner.visit(tree)
        here = unit_of(module)
        if here not in rules.arrows and here not in unknown:
            unknown.add(here)
            found.add(Violation(rel, 1, "unknown-package", f"unit {here!r} is in no layering table (ARROWS)"))
        for site in scanner.imports + _lazy_table_sites(tree, scanner):
            if unit_of(site.target) != here:
                edges[here].setdefault(unit_of(site.target), site)
            found.update(
                Violation(rel, site.line, rule, msg) for rule, msg in _import_violations(site, rules)
            )
        for line, owner, attr in scanner.attribute_reads:
            found.add(Violation(rel, line, "private-name", f"reads the underscored name {attr} of {owner}"))
        found.update(
            Violation(rel, line, "shadowing", msg) for line, msg in _shadowing(module, tree, scanner, modules)
        )

    for cycle in _find_cycles(edges):
        steps = [(a, b, edges[a][b]) for a, b in itertools.pairwise(cycle)]
        where = "; ".join(f"{a} -> {b} at {site.path}:{site.line}" for a, b, site in steps)
        found.add(Violation(steps[0][2].path, steps[0][2].line, "cycle", f"{' -> '.join(cycle)} ({where})"))
    return sorted(found)


def modules_loaded(arguments: list[str], pythonpath: Iterable[os.PathLike | str]) -> tuple[set[str], str]:
    """The modules a fresh interpreter imports while running ``python <arguments>``, and its stderr.

    ``-X importtime`` lists every module the moment it is first imported, so nothing in the run is changed.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *arguments],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,  # only catches a hang
    )
    loaded, other = set(), []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:"):
            name = line.rsplit("|", 1)[-1].strip()
            if name != "imported package":
                loaded.add(name)
        else:
            other.append(line)
    assert proc.returncode == 0, f"python {' '.join(arguments)} failed:\n" + "\n".join(other)
    return loaded, proc.stdout


def forbidden_loaded(loaded: Iterable[str], forbidden: Iterable[str]) -> list[str]:
    forbidden = tuple(forbidden)
    return sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden))


def console_script(src: Path) -> str:
    """The `segdice` console script as a `python -c` program (the entry point read from pyproject.toml)."""
    entry = "segdice.cli:main"
    pyproject = src.parent / "pyproject.toml"
    if pyproject.exists():
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10: keep the default
            pass
        else:
            entry = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["scripts"][TOP]
    module, func = entry.split(":")
    return f"import sys; from {module} import {func}; sys.argv[0] = {TOP!r}; sys.exit({func}())"


def _env_pythonpath() -> list[str]:
    return [str(SRC), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]


# --- the checks on this repository ------------------------------------------------------------------------


def test_source_follows_the_layering_rules():
    violations = scan(SRC)
    assert not violations, f"{len(violations)} layering violations:\n" + "\n".join(map(str, violations))


def test_import_segdice_stays_light():
    loaded, _ = modules_loaded(["-c", f"import {TOP}"], _env_pythonpath())
    heavy = forbidden_loaded(loaded, NOT_LOADED_BY_IMPORT)
    assert not heavy, f"`import {TOP}` loads {', '.join(heavy)}"


@pytest.mark.parametrize("arguments", CLI_ARGUMENTS, ids=" ".join)
@pytest.mark.parametrize("entry", ["console script", "python -m"])
def test_cli_help_and_version_load_no_torch(entry, arguments):
    program = ["-c", console_script(SRC)] if entry == "console script" else ["-m", TOP]
    loaded, stdout = modules_loaded([*program, *arguments], _env_pythonpath())
    assert stdout.strip()
    heavy = forbidden_loaded(loaded, NOT_LOADED_BY_CLI_HELP)
    assert not heavy, (
        f"{entry} {' '.join(arguments)} loads {len(heavy)} forbidden modules: {', '.join(heavy[:5])}, ..."
    )


# --- the checks of the checker, on tiny synthetic trees ---------------------------------------------------


def make_tree(root: Path, files: Mapping[str, str]) -> Path:
    """Writes ``files`` (paths relative to ``root/src``) plus the empty packages they need; returns src."""
    src = root / "src"
    for rel, text in files.items():
        path = src / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        for parent in path.relative_to(src).parents:
            if parent.parts and parent.parts[0] == TOP and not (src / parent / "__init__.py").exists():
                (src / parent / "__init__.py").write_text("", encoding="utf-8")
    return src


CLEAN_TREE = {
    "segdice/__init__.py": (
        "from segdice._checks import SegDiceError\n"
        "from segdice._version import __version__\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from segdice.evaluation import evaluate\n"
        "def __getattr__(name):\n"
        "    if name == 'evaluate':\n"
        "        from segdice.evaluation import evaluate\n"
        "        return evaluate\n"
        "    raise AttributeError(name)\n"
    ),
    "segdice/_checks.py": "class SegDiceError(ValueError):\n    pass\n",
    "segdice/_version.py": "__version__ = '0'\n",
    "segdice/stats/__init__.py": "from segdice.stats.soft import soft_stats\n",
    "segdice/stats/soft.py": "from segdice.stats._kernels import kernel\nfrom . import _kernels\ndef soft_stats(): ...\n",
    "segdice/stats/_kernels.py": "from segdice._checks import SegDiceError\ndef kernel(): ...\n",
    "segdice/metrics/__init__.py": "from segdice.metrics.overlap import dice\n",
    "segdice/metrics/overlap.py": "from segdice.stats import soft_stats\nfrom ._formulas import ratio\ndef dice(): ...\n",
    "segdice/metrics/_formulas.py": "def ratio(): ...\n",
    "segdice/evaluation/__init__.py": "from segdice.evaluation._run import evaluate\n",
    "segdice/evaluation/_run.py": (
        "import segdice.metrics.overlap as overlap\n"
        "from segdice.report import tables\n"
        "def evaluate():\n"
        "    return overlap.dice, tables.write\n"
    ),
    "segdice/report/tables.py": "def write(): ...\n",
    "segdice/cli.py": "import segdice\nfrom segdice import __version__\n",
}

VIOLATIONS = {
    # case: (files changed or added on top of CLEAN_TREE, the violations expected as (rule, file, line))
    "private name": (
        {"segdice/metrics/streaming.py": "from segdice.metrics._formulas import _hidden\n"},
        [("private-name", "segdice/metrics/streaming.py", 1)],
    ),
    "private helper name": (
        {"segdice/metrics/streaming.py": "from segdice._checks import _describe\n"},
        [("private-name", "segdice/metrics/streaming.py", 1)],
    ),
    "private name read": (
        {"segdice/metrics/streaming.py": "from . import overlap\nx = overlap._ratio\n"},
        [("private-name", "segdice/metrics/streaming.py", 2)],
    ),
    "private module": (
        {"segdice/metrics/streaming.py": "def f():\n    from segdice.stats import _kernels\n"},
        [("private-module", "segdice/metrics/streaming.py", 2)],
    ),
    "arrow": (
        {"segdice/io.py": "def f():\n    from segdice.metrics import dice\n"},
        [("arrow", "segdice/io.py", 2)],
    ),
    "TYPE_CHECKING arrow": (
        {
            "segdice/report/html.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from segdice.demo import DemoResult\n"
        },
        [("arrow", "segdice/report/html.py", 3)],
    ),
    # The root names everything, so reaching up to it is a cycle as well as an arrow broken.
    "root name from below": (
        {"segdice/metrics/streaming.py": "from segdice import __version__\n"},
        [("cycle", "segdice/evaluation/_run.py", 1), ("arrow", "segdice/metrics/streaming.py", 1)],
    ),
    "eager root": (
        {"segdice/__init__.py": "from segdice.evaluation import evaluate\n"},
        [("root-eager", "segdice/__init__.py", 1)],
    ),
    "unknown package": (
        {"segdice/_pairing.py": "def pair_cases(): ...\n"},
        [("unknown-package", "segdice/_pairing.py", 1)],
    ),
    "cycle": (
        {
            "segdice/demo/__init__.py": "def run_demo():\n    from segdice import evaluate\n",
            "segdice/__init__.py": CLEAN_TREE["segdice/__init__.py"]
            + "def _lazy():\n    from segdice.demo import run_demo\n",
        },
        [("cycle", "segdice/demo/__init__.py", 2)],
    ),
    "function named as its module": (
        {"segdice/evaluation/pairing.py": "def pairing(): ...\n"},
        [("shadowing", "segdice/evaluation/pairing.py", 1)],
    ),
    "package name hiding a submodule": (
        {"segdice/evaluation/__init__.py": "from ._run import evaluate as _run\n"},
        [("shadowing", "segdice/evaluation/__init__.py", 1)],
    ),
}


def test_clean_synthetic_tree_has_no_violations(tmp_path):
    assert scan(make_tree(tmp_path, CLEAN_TREE)) == []


@pytest.mark.parametrize("case", VIOLATIONS)
def test_each_kind_of_violation_is_caught(tmp_path, case):
    changes, expected = VIOLATIONS[case]
    violations = scan(make_tree(tmp_path, {**CLEAN_TREE, **changes}))
    assert [(v.rule, v.path, v.line) for v in violations] == expected, "\n".join(map(str, violations))
    rule, path, line = expected[0]
    assert str(violations[0]).startswith(f"{path}:{line}: [{rule}] ")


def test_a_cycle_is_reported_with_every_step(tmp_path):
    rules = Rules(
        arrows={ROOT: AllBut(), "a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"})}
    )
    src = make_tree(
        tmp_path,
        {
            "segdice/a.py": "import segdice.b\n",
            "segdice/b.py": "def f():\n    from segdice import c\n",
            "segdice/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from segdice.a import x\n",
        },
    )
    (cycle,) = scan(src, rules)
    assert cycle.rule == "cycle"
    assert cycle.message == (
        "a -> b -> c -> a (a -> b at segdice/a.py:1; b -> c at segdice/b.py:2; c -> a at segdice/c.py:3)"
    )


def test_lazy_table_of_module_names_counts_as_imports(tmp_path):
    init = (
        "import importlib\n"
        "_LAZY = {'evaluate': 'segdice.evaluation'}\n"
        "def __getattr__(name):\n"
        "    return getattr(importlib.import_module(_LAZY[name]), name)\n"
    )
    src = make_tree(
        tmp_path,
        {
            **CLEAN_TREE,
            "segdice/__init__.py": init,
            "segdice/evaluation/_run.py": "from segdice import evaluate\n",
        },
    )
    violations = scan(src)
    assert [(v.rule, v.path, v.line) for v in violations] == [
        ("arrow", "segdice/evaluation/_run.py", 1),
        ("cycle", "segdice/evaluation/_run.py", 1),
    ]
    assert "segdice -> evaluation at segdice/__init__.py:2" in violations[1].message


def test_heavy_import_of_the_package_is_caught(tmp_path):
    # Fake heavy modules on the synthetic path stand in for the real ones (and keep this fast).
    src = make_tree(
        tmp_path,
        {
            "segdice/__init__.py": "from segdice import evaluation\n",
            "segdice/evaluation/__init__.py": "import scipy\n",
            "scipy/__init__.py": "",
        },
    )
    loaded, _ = modules_loaded(["-c", "import segdice"], [src])
    assert forbidden_loaded(loaded, NOT_LOADED_BY_IMPORT) == ["scipy", "segdice.evaluation"]

    (src / "segdice" / "__init__.py").write_text("def __getattr__(name):\n    raise AttributeError(name)\n")
    loaded, _ = modules_loaded(["-c", "import segdice"], [src])
    assert "segdice" in loaded
    assert forbidden_loaded(loaded, NOT_LOADED_BY_IMPORT) == []


def test_torch_behind_the_help_is_caught(tmp_path):
    src = make_tree(
        tmp_path,
        {
            "segdice/cli.py": "import sys\ndef main():\n    if '--help' in sys.argv:\n        import torch.nn\n"
            "    print('usage: segdice')\n",
            "torch/__init__.py": "",
            "torch/nn.py": "",
        },
    )
    loaded, stdout = modules_loaded(["-c", console_script(src), "--help"], [src])
    assert stdout.strip() == "usage: segdice"
    assert forbidden_loaded(loaded, NOT_LOADED_BY_CLI_HELP) == ["torch", "torch.nn"]
    loaded, _ = modules_loaded(["-c", console_script(src), "--version"], [src])
    assert forbidden_loaded(loaded, NOT_LOADED_BY_CLI_HELP) == []
