"""Prompt books in tests: write one with its content hash, apply one with `python -m optimize.apply`,
and score a book's test split with and without one of its entries' settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from prompt_opt_api.prompt_book import content_sha256
from tests.cli_helpers import REPO, cli_env


def write_book(path: Path, data: dict) -> Path:
    """``data`` written as a book whose ``content_sha256`` matches it."""
    path.write_text(json.dumps({**data, "content_sha256": content_sha256(data)}), encoding="utf-8")
    return path


def apply_book(*args) -> subprocess.CompletedProcess:
    """``python -m optimize.apply ARGS --allow tests.`` (the tests' scripted models)."""
    return subprocess.run([sys.executable, "-m", "optimize.apply", *map(str, args), "--allow", "tests."], cwd=REPO,
                          env=cli_env(), capture_output=True, text=True, timeout=300)


def applied_test_cers(book_path: Path, data: Path, out: Path) -> list[float]:
    """Each pair's CER of ``book_path`` applied to the test split of ``data``."""
    applied = apply_book(book_path, data, "--split", "test", "--out", out)
    assert applied.returncode == 0, applied.stderr[-3000:]
    return [p["cer"] for p in json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["pairs"]]


def cers_without(book_path: Path, key: str, data: Path, folder: Path) -> list[float]:
    """The same as ``applied_test_cers`` for the book with ``key`` dropped from its first entry."""
    whole = json.loads(book_path.read_text(encoding="utf-8"))
    del whole["pairs"][0][key]
    return applied_test_cers(write_book(folder / f"without-{key}.book.json", whole), data, folder / f"without-{key}.csv")
