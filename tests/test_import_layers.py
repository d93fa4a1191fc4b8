"""Dependencies point one way: contracts at the bottom, no package importing a sibling.

The rules are import-linter contracts in pyproject.toml (``lint-imports``). It reads every
import statement, lazy ones inside functions and TYPE_CHECKING blocks included, and
follows chains through other modules: a stronger check than a walk over direct imports,
which is why it is the only one. The second test shows it can fail.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("prompt_opt_api", "optimize", "optimizers", "models", "tasks")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=180)


def test_import_linter_contracts_hold():
    proc = _lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 kept, 0 broken" in proc.stdout, proc.stdout


def _copy_tree(root: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root)


def test_a_lazy_back_import_breaks_the_contracts(tmp_path):
    """The same contracts on a copy of the tree where a plugin imports the engine inside a function."""
    _copy_tree(tmp_path)
    (tmp_path / "tasks" / "back_import.py").write_text(
        "def leak():\n    from optimize.evaluator import Evaluator\n    return Evaluator\n")
    proc = _lint_imports(tmp_path)
    assert proc.returncode != 0 and "2 kept, 1 broken" in proc.stdout, proc.stdout + proc.stderr
    assert "tasks.back_import -> optimize.evaluator" in proc.stdout, proc.stdout


@pytest.mark.parametrize("module, back_import", [
    ("optimize/failed_jobs.py", "from optimize.sweep_status import SweepExitStatus"),
    ("prompt_opt_api/example.py", "from prompt_opt_api.demo_retrieval import DemoRetrieval"),
])
def test_a_lazy_import_circle_within_a_package_breaks_the_contracts(tmp_path, module, back_import):
    """A copy of the tree where a module imports, inside a function, one that imports it."""
    _copy_tree(tmp_path)
    with (tmp_path / module).open("a", encoding="utf-8") as fh:
        fh.write(f"\n\ndef _circle():\n    {back_import}\n    return None\n")
    proc = _lint_imports(tmp_path)
    assert proc.returncode != 0 and "2 kept, 1 broken" in proc.stdout, proc.stdout + proc.stderr
    assert "No import circle between the modules of a package BROKEN" in proc.stdout, proc.stdout
