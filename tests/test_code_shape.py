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


def module_imports() -> dict[str, set[str]]:
    """snncli module -> the snncli modules it imports when it is imported (top level only)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
        graph[name] = found
    return {k: {m for m in v if m in graph and m != k} for k, v in graph.items()}


def test_no_import_cycle_among_snncli_modules():
    graph = module_imports()
    assert "snncli.registry" in graph and "snncli.models.csnn" in graph

    def reaches(start, goal, seen):
        for nxt in graph[start] - seen:
            if nxt == goal or reaches(nxt, goal, seen | {nxt}):
                return True
        return False

    assert [m for m in graph if reaches(m, m, set())] == []
    # The registry is a leaf: model modules import it, never the reverse.
    assert not any(m.startswith("snncli.models") for m in graph["snncli.registry"])


def test_registry_and_recipes_import_neither_torch_nor_models():
    code = (
        "import sys, snncli.registry, snncli.recipes; "
        "print('torch' in sys.modules, 'snncli.models' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
