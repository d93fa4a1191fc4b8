"""What an optimizer is shown of a pair: its train and val examples, with no path to the task's files.

An ``Example`` as loaded names the task CSV by absolute path (``source_row``) and its image
by absolute path, and the CSV sits beside the images: a plugin holding them could rebuild
the split and read the test answers, even by accident (a gazetteer built from "the data
file"). The optimizer gets copies whose ``source_row`` is the row alone (``row 3 (line 4)``)
and whose ``image`` is a link, in a private temporary folder, to the page: the folder holds
only this pair's train and val pages, named by content hash. The engine keeps the originals
(error messages, trials, reports); the evaluator maps the copies back to them.

This keeps careless code away from the task's files. Code written to find them (resolving
the link, walking the file system or the interpreter's frames) is outside what the engine
can stop in-process: see "Trust boundary" in docs/engine.md.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from optimize.plugin_errors import HELD_OUT_TEST
from prompt_opt_api import Example, Pair

log = logging.getLogger(__name__)

_ROW = re.compile(r"row \d+ \(line \d+\)$")


def row_label(source_row: str, fallback: str) -> str:
    """``source_row`` without the file: ``"/data/task.csv, row 3 (line 4)"`` -> ``"row 3 (line 4)"``."""
    found = _ROW.search(source_row or "")
    return found.group(0) if found else fallback


@contextmanager
def shown_pair(pair: Pair) -> Iterator[tuple[Pair, dict[Example, Example]]]:
    """The pair as an optimizer sees it, and the map from each own example to its shown copy.

    The shown pair's test split is empty (``HELD_OUT_TEST``, so that scoring it says why); its
    examples' rows carry no file name and their images are links in a temporary folder
    removed when the block ends.
    """
    folder = Path(tempfile.mkdtemp(prefix="vlm-prompt-opt-pages-"))
    try:
        shown: dict[Example, Example] = {}
        for index, ex in enumerate((*pair.train, *pair.val), start=1):
            shown[ex] = dataclasses.replace(ex, image=_page_link(folder, ex),
                                            source_row=row_label(ex.source_row, f"example {index}"))
        visible = dataclasses.replace(pair, train=tuple(shown[ex] for ex in pair.train),
                                      val=tuple(shown[ex] for ex in pair.val), test=HELD_OUT_TEST)
        yield visible, shown
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _page_link(folder: Path, ex: Example) -> Path:
    """A link to ``ex``'s page in ``folder``, named by the page's content hash."""
    link = folder / f"{ex.image_sha256[:24]}{Path(ex.image).suffix.lower()}"
    if not link.is_symlink():
        try:
            os.symlink(ex.image, link)
        except OSError as err:  # a file system without links: the page's own path
            log.debug("no link for %s (%s): the optimizer gets the page's own path", ex.image, err)
            return Path(ex.image)
    return link
