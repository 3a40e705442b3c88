"""The house's layers, read from the source with `ast` (nothing is imported):

- no import circles among runbook/ modules;
- runbook/ never imports steps/ or lab/ (nor tests/ or bench/);
- only the front ends print: of runbook/, steps/ and tasks.py, only runbook/cli/render.py and the
  invoke task modules may call print() or create a rich Console (lab/ may too; bench/ and tests/
  are outside the layers).

Every import counts: at module level, inside functions and under `if TYPE_CHECKING:` (a
type-only import is still a dependency, and a function-level one that dodges a circle at import
time keeps the circle), and `importlib.import_module("a.b")` with a literal name. Importing
`a.b.c` runs `a/b/__init__.py` first, so it depends on the package `a.b` too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Imports that close a circle today, with why they are still there. Each must still exist and
#: still close a circle (the test says when one can go).
KNOWN_CIRCLE_EDGES: dict[tuple[str, str], str] = {}


#: Modules that may print (print() or a rich Console): the front ends, tasks.py and runbook/cli/.
def is_front_end(name: str) -> bool:
    return name == "tasks" or name == "runbook.cli" or name.startswith("runbook.cli.")


#: Modules that print although they are not front ends (none today), with why.
KNOWN_PRINTERS: dict[str, str] = {}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(*folders: str, root: Path = ROOT) -> dict[str, Path]:
    """Every module below the folders (and root/NAME.py for a name without a folder), by name.

    A file whose name is no identifier cannot be imported, so it is no module: the Python that
    the servers run (runbook/remote/scripts/mail-*.py)."""
    found: dict[str, Path] = {}
    for folder in folders:
        base = root / folder
        paths = sorted(base.rglob("*.py")) if base.is_dir() else [root / f"{folder}.py"]
        found.update({module_name(p, root): p for p in paths if p.stem.isidentifier()})
    return found


def imported_names(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(module name, line) for every import in the file, relative ones made absolute; for
    `from a import b`, both `a.b` and `a` (b may be a module or a name in a)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value, node.lineno


def dependencies(known: dict[str, Path]) -> dict[str, dict[str, int]]:
    """For each known module, the known modules it imports (with the first line that does),
    including the packages that importing them runs, except the importer's own packages."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in known.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets: dict[str, int] = {}
        for target, line in imported_names(name, path):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in known and prefix != name and prefix not in own:
                    targets.setdefault(prefix, line)
        graph[name] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def runbook_graph() -> dict[str, dict[str, int]]:
    return dependencies(modules("runbook"))


def without(graph: dict[str, dict[str, int]], edges: set[tuple[str, str]]) -> dict[str, set[str]]:
    return {name: {t for t in targets if (name, t) not in edges} for name, targets in graph.items()}


def test_the_import_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
        "pkg/b.py": "def f():\n    from . import c\n",
        "pkg/c.py": "import importlib\nimportlib.import_module('pkg.sub.d')\n",
        "pkg/sub/__init__.py": "from pkg.sub.d import x\n",
        "pkg/sub/d.py": "from ..a import A\nx = 1\n",
        "pkg/e.py": "import pkg.sub.d\nimport os.path\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = dependencies(modules("pkg", root=tmp_path))
    assert {name: set(targets) for name, targets in graph.items()} == {
        "pkg": set(),
        "pkg.a": {"pkg.b"},  # under `if TYPE_CHECKING:`
        "pkg.b": {"pkg.c"},  # inside a function, relative
        "pkg.c": {"pkg.sub", "pkg.sub.d"},  # by importlib; importing pkg.sub.d runs pkg/sub/__init__.py
        "pkg.sub": {"pkg.sub.d"},
        "pkg.sub.d": {"pkg.a"},  # its own packages (pkg, pkg.sub) are no dependency
        "pkg.e": {"pkg.sub", "pkg.sub.d"},
    }
    assert circles({n: set(t) for n, t in graph.items()}) == [["pkg.a", "pkg.b", "pkg.c", "pkg.sub", "pkg.sub.d"]]


def test_runbook_has_no_import_circles() -> None:
    graph = runbook_graph()
    found = circles(without(graph, set(KNOWN_CIRCLE_EDGES)))
    described = [", ".join(members) + ":\n" + "\n".join(describe_edges(graph, members)) for members in found]
    assert not found, "import circles among runbook/ modules:\n" + "\n".join(described)


def describe_edges(graph: dict[str, dict[str, int]], members: list[str]) -> list[str]:
    return [f"  {a} imports {b} (line {graph[a][b]})" for a in members for b in sorted(graph[a]) if b in members]


def test_each_known_circle_edge_is_still_needed() -> None:
    graph = runbook_graph()
    for edge, why in KNOWN_CIRCLE_EDGES.items():
        importer, imported = edge
        assert imported in graph[importer], (
            f"{importer} no longer imports {imported}: remove it from KNOWN_CIRCLE_EDGES"
        )
        rest = without(graph, set(KNOWN_CIRCLE_EDGES) - {edge})
        assert any(importer in c and imported in c for c in circles(rest)), (
            f"{importer} -> {imported} closes no circle any more: remove it from KNOWN_CIRCLE_EDGES ({why})"
        )


def test_runbook_never_imports_steps_lab_tests_or_bench() -> None:
    wrong = [
        f"{module_name(path)} imports {target} (line {line})"
        for name, path in modules("runbook").items()
        for target, line in imported_names(name, path)
        if target.split(".")[0] in {"steps", "lab", "tests", "bench"}
    ]
    assert not wrong, "runbook/ is below steps/ and lab/:\n" + "\n".join(wrong)


def printing_calls(path: Path) -> Iterator[tuple[str, int]]:
    """print(...) and Console(...) (rich's, imported or as rich.console.Console) in the file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("print", "Console"):
            yield func.id, node.lineno
        elif isinstance(func, ast.Attribute) and func.attr == "Console":
            yield "Console", node.lineno


def test_only_the_front_ends_print() -> None:
    printers = {
        name: [f"{what}() at line {line}" for what, line in printing_calls(path)]
        for name, path in modules("runbook", "steps", "tasks").items()
    }
    printers = {name: calls for name, calls in printers.items() if calls}
    wrong = {name: calls for name, calls in printers.items() if not is_front_end(name) and name not in KNOWN_PRINTERS}
    assert not wrong, "only runbook/cli/render.py, the invoke task modules and lab/ print:\n" + "\n".join(
        f"{name}: {', '.join(calls)}" for name, calls in sorted(wrong.items())
    )
    stale = sorted(set(KNOWN_PRINTERS) - set(printers))
    assert not stale, f"no longer print, remove them from KNOWN_PRINTERS: {stale}"
    assert "tasks" in printers  # the check does find what prints


def test_the_print_check_finds_print_and_console(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "import rich.console\nfrom rich.console import Console\n"
        "def f(c):\n    print('x')\n    c.print('y')\n    Console()\n    rich.console.Console(stderr=True)\n"
    )
    assert sorted(printing_calls(source), key=lambda hit: hit[1]) == [("print", 4), ("Console", 6), ("Console", 7)]


#: The layers of runbook/, lowest first: a module imports its own layer and those below it only.
#: The engine (every runbook module not named here: step, runner, actions, plan, journal, context)
#: drives the hosts and DNS, so it sits above remote access; servers' knowledge and features use it.
BASE = ("runbook.errors", "runbook.inventory", "runbook.specs", "runbook.schema", "runbook.secrets",
        "runbook.failpoints", "runbook.waiting", "runbook.filediff", "runbook.durable")  # fmt: skip
LAYERS = (
    ("base", BASE),
    ("remote", ("runbook.remote", "runbook.dns")),
    ("engine", ()),
    ("services", ("runbook.services",)),
    ("features", ("runbook.discover", "runbook.report")),
    ("cli", ("runbook.cli",)),
)
ENGINE = 2
#: Imports upward through the layers that remain, with why.
KNOWN_UPWARD: dict[tuple[str, str], str] = {
    ("runbook.remote.http", "runbook.actioncontext"): "type only: the ACME trust it builds is cached on the run",
}


def layer_of(name: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return rank
    return ENGINE


def test_each_runbook_layer_imports_only_itself_and_the_layers_below() -> None:
    graph = runbook_graph()
    wrong = [
        f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]}, line {line})"
        for name, targets in graph.items()
        for target, line in targets.items()
        if layer_of(target) > layer_of(name) and (name, target) not in KNOWN_UPWARD
    ]
    assert not wrong, "an import upward through the layers:\n" + "\n".join(sorted(wrong))
    stale = [edge for edge in KNOWN_UPWARD if edge[1] not in graph.get(edge[0], {})]
    assert not stale, f"no longer imported, remove from KNOWN_UPWARD: {stale}"
