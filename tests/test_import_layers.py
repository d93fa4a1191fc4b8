"""Dependencies point one way: contracts at the bottom, no package importing a sibling."""

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONTRACTS = "prompt_opt_api"
SIBLINGS = ("optimize", "optimizers", "models", "tasks")
OURS = (CONTRACTS, *SIBLINGS)


def _imported_packages(path: Path) -> set[str]:
    """Our top-level packages that ``path`` imports anywhere (module level, functions, TYPE_CHECKING)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {n.split(".")[0] for n in names if n.split(".")[0] in OURS}
    return found


def _package_graph() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> files that import it."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for package in OURS:
        for path in sorted((REPO / package).rglob("*.py")):
            for target in _imported_packages(path) - {package}:
                graph[package][target].append(str(path.relative_to(REPO)))
    return graph


def test_contracts_import_nothing_of_ours():
    graph = _package_graph()
    assert dict(graph[CONTRACTS]) == {}


def test_no_package_imports_a_sibling():
    graph = _package_graph()
    offending = {f"{src} -> {dst}": files for src in SIBLINGS for dst, files in graph[src].items() if dst != CONTRACTS}
    assert offending == {}, offending


def test_package_graph_has_no_cycle():
    graph = _package_graph()
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in graph[node]:
            assert state.get(nxt) != "open", f"import cycle: {' -> '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = "done"

    for package in OURS:
        if package not in state:
            visit(package, [])


def test_the_walker_sees_a_cross_import(tmp_path):
    """The check above can fail: a lazy import inside a function is found."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from optimize.evaluator import Evaluator\n    import tasks.cer_metric\n")
    assert _imported_packages(module) == {"optimize", "tasks"}


def test_import_linter_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(exe)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 kept, 0 broken" in proc.stdout, proc.stdout
