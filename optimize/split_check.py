"""The engine's check of any splitter's output: train, val and test are disjoint by document.

Whatever ``split._target_`` names, the pairs it returns must put every page, and every
near-duplicate of it (``prompt_opt_api.page_units``: one document scanned or saved twice),
in one split for every pair it appears in. A page that is val for one pair and test for
another, or a test page whose re-encoded copy is train, would let what an optimizer saw
reach a test CER. The entry point runs this before any model loads; a split that fails it
ends the run with one line (exit 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optimize.shown_pair import row_label
from prompt_opt_api import Example, Pair, TaskError
from prompt_opt_api.page_units import PageUnits, page_units

SPLIT_NAMES = ("train", "val", "test")


class SplitNotDisjoint(TaskError):
    """A splitter put one document (a page or its near-duplicate) in two splits."""


@dataclass(frozen=True)
class SplitAudit:
    """What the check found: the pages of the pairs to run and their split units."""

    pages: int
    units: int
    grouped_pages: int  # pages that share their unit with a near-duplicate
    summary: str  # one line for the run plan, the log and the reports

    def to_json(self) -> dict[str, Any]:
        return {"pages": self.pages, "units": self.units, "grouped_pages": self.grouped_pages, "summary": self.summary}


def check_split(pairs: Sequence[Pair], threshold: float | None, splitter: str = "") -> SplitAudit:
    """Check that no document of ``pairs`` is in two splits; what was found.

    Args:
        pairs: The pairs the splitter returned (the ones to run).
        threshold: The near-duplicate cosine (``split.near_duplicate_cosine``); None: by sha256 only.
        splitter: The splitter's ``_target_``, for the message.

    Raises:
        SplitNotDisjoint: naming the two examples, their splits and pairs.
        TaskError: a page that cannot be read for its signature.
    """
    placed = [(name, pair.key, ex) for pair in pairs for name in SPLIT_NAMES for ex in getattr(pair, name)]
    units = page_units((ex for _, _, ex in placed), threshold)
    first: dict[str, tuple[str, str, Example]] = {}
    for name, key, ex in placed:
        unit = units.unit_of[ex.image_sha256]
        seen = first.setdefault(unit, (name, key, ex))
        if seen[0] != name:
            raise SplitNotDisjoint(_message(seen, (name, key, ex), units, splitter))
    return SplitAudit(units.pages, units.units, units.grouped_pages, units.summary())


def _message(a: tuple[str, str, Example], b: tuple[str, str, Example], units: PageUnits, splitter: str) -> str:
    same = a[2].image_sha256 == b[2].image_sha256
    how = "the same image" if same else f"near-duplicate pages (page-gray16/v1 cosine >= {units.threshold:g})"
    who = f"split._target_={splitter}" if splitter else "the splitter"
    return (f"{who} does not split by document: {_where(a)} and {_where(b)} ({how}); every page and its "
            "near-duplicates must be train, val or test for every pair (split.near_duplicate_cosine sets what counts "
            "as a near-duplicate)")


def _where(placed: tuple[str, str, Example]) -> str:
    name, key, ex = placed
    return f"{Path(ex.image).name} ({row_label(ex.source_row, ex.source_row)}) is {name} for pair {key!r}"
