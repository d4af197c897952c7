"""The house rules of the code's layout (issue 31): the command line is its own package, which
imports the flows and never the other way, and no modules import each other in a circle."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("flows", "tasks", "blocks", "webhooks")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `path` imports, at the top or inside functions, except under its
    `if __name__ == "__main__":` guard (flows/ct.py's entry into the command line)."""
    tree = ast.parse(path.read_text())
    guarded = {
        id(node)
        for top in tree.body
        if isinstance(top, ast.If) and "__name__" in ast.unparse(top.test)
        for node in ast.walk(top)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        found |= {n for n in names if n in known}
    return found


@functools.cache
def _graph() -> dict[str, set[str]]:
    known = _modules()
    graph = {}
    for name, path in known.items():
        # a package's own __init__ is imported on the way to any of its modules: not an edge
        graph[name] = {
            m for m in _imports(path, known) if m != name and not name.startswith(m + ".")
        }
    return graph


def test_no_modules_import_each_other_in_a_circle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            raise AssertionError("import circle: " + " -> ".join(cycle))


def _crossing(sources: tuple[str, ...], target: str, *, inside: str = "") -> list[tuple[str, str]]:
    """The imports from modules under `sources` (those under `inside` excepted) of a module
    under `target`."""
    return sorted(
        (a, b)
        for a, targets in _graph().items()
        for b in targets
        if a.startswith(sources) and not (inside and a.startswith(inside)) and b.startswith(target)
    )


def test_the_flows_never_import_the_command_line():
    wrong = _crossing(("flows", "tasks", "blocks"), "flows.cli", inside="flows.cli")
    assert not wrong, f"flows import the command line: {wrong}"


def test_tasks_and_blocks_never_import_the_flows():
    """The typed logic runs without the flows: `tasks/` and `blocks/` import no `flows` module."""
    wrong = _crossing(("tasks", "blocks"), "flows")
    assert not wrong, f"tasks or blocks import flows: {wrong}"
