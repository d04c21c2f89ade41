"""The codebase stays readable: short functions, a leaf registry, no import cycles."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "snncli"
MAX_FUNCTION_LINES = 80


def is_command(node: ast.FunctionDef) -> bool:
    """Typer command declarations (their option lists are long by nature) are exempt."""
    return any(
        isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "command"
        for d in node.decorator_list
    )


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not is_command(node):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.name} ({lines})")
    assert long == []


def module_imports(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules of `package` that importing it imports: every import statement
    anywhere in it (inside functions too), relative or absolute. Importing `a.b.c` also runs
    the packages `a.b` and `a`, except those the importer itself lies in (already running)."""
    graph = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in node.names)
        own = {".".join(parts[:i]) for i in range(1, len(parts))}
        graph[name] = {p for m in found for p in _with_packages(m)} - own
    return {k: {m for m in v if m in graph and m != k} for k, v in graph.items()}


def _with_packages(module: str) -> list[str]:
    """`a.b.c` -> a, a.b, a.b.c: what importing it runs."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import one another, directly or not (strongly connected
    components of more than one module), each sorted."""

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    reached = {m: reach(m) for m in graph}
    groups = {tuple(sorted(m2 for m2 in reached[m] if m in reached[m2])) for m in graph}
    return sorted(list(g) for g in groups if len(g) > 1)


def test_no_import_cycle_among_snncli_modules():
    graph = module_imports()
    assert "snncli.registry" in graph and "snncli.models.csnn" in graph
    assert import_cycles(graph) == []
    # The registry is a leaf: model modules import it, never the reverse.
    below = set().union(*(graph[m] for m in graph["snncli.registry"]), graph["snncli.registry"])
    assert below <= {"snncli.errors", "snncli.recipes", "snncli.checks", "snncli.datasets"}, below


def test_the_import_graph_counts_imports_inside_functions_and_the_packages_they_run(tmp_path):
    graph = module_imports()
    assert "snncli.train" in graph["snncli.cli"]  # imported inside the train command only
    assert "snncli.models" in graph["snncli.predict"]  # from .models.base runs models/__init__
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def late():\n    from .sub import b\n")
    (package / "sub" / "__init__.py").write_text("from . import c\n")
    (package / "sub" / "b.py").write_text("")
    (package / "sub" / "c.py").write_text("import pkg.a\nfrom . import b\n")
    found = module_imports(package)
    assert found["pkg.sub.c"] == {"pkg.a", "pkg.sub.b"}  # not its own package pkg.sub
    assert import_cycles(found) == [["pkg.a", "pkg.sub", "pkg.sub.c"]]


def test_registry_and_recipes_import_neither_torch_nor_models():
    code = (
        "import sys, snncli.registry, snncli.recipes; "
        "print('torch' in sys.modules, 'snncli.models' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
