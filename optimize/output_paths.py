"""Where a run will write, checked before anything loads: the answer store and the results folder.

A store whose folder cannot be made (a part of its path is a file, a folder this user may
not write) would end in a traceback when the store opens, and a results folder that is a
file would be found only when the run publishes, after all the compute. Each is one line
naming the key as an override (``paths.store=...``), and the entry point exits 2.
"""

from __future__ import annotations

import os
from pathlib import Path

from prompt_opt_api import TaskError


class OutputPathError(TaskError):
    """``paths.store`` or ``paths.results_dir`` cannot be written; the message names the key."""


def check_output_paths(store: str, results_dir: str | None) -> None:
    """Raise ``OutputPathError`` when the store file or the results folder cannot be written.

    Nothing is created: folders that do not exist yet are fine when they can be made.
    """
    problems = [_file_problem("paths.store", store)]
    if results_dir:
        problems.append(_folder_problem("paths.results_dir", results_dir, Path(results_dir).expanduser()))
    found = [p for p in problems if p]
    if found:
        raise OutputPathError("; ".join(found))


def _file_problem(key: str, value: str) -> str | None:
    path = Path(value).expanduser()
    if path.is_dir():
        return f"{key}={value}: is a folder; name the store's file (e.g. {path / 'store.sqlite'})"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"{key}={value}: this user cannot read and write it"
    return _folder_problem(key, value, path.parent)


def _folder_problem(key: str, value: str, folder: Path) -> str | None:
    """What stops ``folder`` from being made or written, or None."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        if existing == folder:
            return f"{key}={value}: {folder} is a file, not a folder"
        return f"{key}={value}: the folder {folder} cannot be made: {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{key}={value}: this user cannot write in {existing}"
    return None
