"""Split units: the pages of a task, with near-duplicates (one document scanned or saved twice) as one unit.

Two pages are near-duplicates when their ``page-gray16/v1`` signatures (the page in grey,
16 x 16 pixels, mean removed, unit length: ``demo_retrieval.page_signature``) have a cosine
of at least the threshold (``split.near_duplicate_cosine``, default 0.99). Measured on the
bundled demo pages: a page and its re-encoded copy >= 0.998, two different documents of
one class <= 0.974. Near-duplicates are joined transitively (a chain of copies is one
unit). Rows of one image (one sha256) are always one unit; a threshold of None groups by
sha256 only.

The splitter (``tasks.pair_splits``) draws its split over these units, and the engine
(``optimize.split_check``) checks any splitter's train, val and test against them. Both
compute signatures through one in-process cache, once per image.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from prompt_opt_api.example import Example
from prompt_opt_api.demo_retrieval import PAGE_GRAY16, page_signature
from prompt_opt_api.errors import TaskError

NEAR_DUPLICATE_COSINE = 0.99
UNIT_SIGNATURE = PAGE_GRAY16
_BLOCK = 512  # rows of the cosine matrix computed at once
_signatures: dict[tuple[str, str], tuple[float, ...]] = {}


@dataclass(frozen=True)
class PageUnits:
    """Each page (image sha256) and the unit it belongs to (the smallest sha256 in the unit).

    Attributes:
        unit_of: Image sha256 -> unit id.
        threshold: The cosine at which pages were joined; None: by sha256 only.
    """

    unit_of: dict[str, str]
    threshold: float | None

    @property
    def pages(self) -> int:
        return len(self.unit_of)

    @property
    def units(self) -> int:
        return len(set(self.unit_of.values()))

    @property
    def grouped_pages(self) -> int:
        """Pages that share their unit with another page."""
        sizes: dict[str, int] = {}
        for unit in self.unit_of.values():
            sizes[unit] = sizes.get(unit, 0) + 1
        return sum(n for n in sizes.values() if n > 1)

    def summary(self) -> str:
        """One line: ``50 pages in 48 split units (3 near-duplicate pages grouped at cosine >= 0.99)``."""
        rule = "by sha256 only" if self.threshold is None else f"at {UNIT_SIGNATURE} cosine >= {self.threshold:g}"
        return (f"{_count(self.pages, 'page')} in {_count(self.units, 'split unit')} "
                f"({_count(self.grouped_pages, 'near-duplicate page')} grouped {rule})")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def signature_of(example: Example) -> tuple[float, ...]:
    """The page's ``page-gray16/v1`` signature, computed once per image file and content."""
    key = (str(example.image), example.image_sha256)
    if key not in _signatures:
        try:
            _signatures[key] = page_signature(Path(example.image))
        except Exception as err:  # noqa: BLE001 - Pillow raises many types
            raise TaskError(f"{example.source_row}: image {example.image} cannot be read for its page signature "
                            f"({type(err).__name__}: {err})") from None
    return _signatures[key]


def page_units(examples: Iterable[Example], threshold: float | None = NEAR_DUPLICATE_COSINE) -> PageUnits:
    """The split units of the pages of ``examples`` (see the module's docstring).

    Raises:
        TaskError: a page that cannot be read, naming its row.
    """
    first: dict[str, Example] = {}
    for ex in examples:
        first.setdefault(ex.image_sha256, ex)
    shas = sorted(first)
    parent = {sha: sha for sha in shas}
    if threshold is not None and len(shas) > 1:
        for i, j in _similar_pairs([signature_of(first[sha]) for sha in shas], threshold):
            _join(parent, shas[i], shas[j])
    return PageUnits({sha: _root(parent, sha) for sha in shas}, threshold)


def _similar_pairs(vectors: Sequence[tuple[float, ...]], threshold: float) -> list[tuple[int, int]]:
    """Index pairs ``i < j`` whose cosine is at least ``threshold`` (signatures are unit vectors)."""
    import numpy as np  # lazy: the contracts import nothing heavy at module level

    matrix = np.asarray(vectors, dtype=np.float32)
    found: list[tuple[int, int]] = []
    for start in range(0, len(matrix), _BLOCK):
        block = matrix[start : start + _BLOCK] @ matrix.T
        rows, cols = np.nonzero(block >= threshold)
        found.extend((start + int(r), int(c)) for r, c in zip(rows, cols) if start + r < c)
    return found


def _root(parent: dict[str, str], sha: str) -> str:
    while parent[sha] != sha:
        parent[sha] = parent[parent[sha]]
        sha = parent[sha]
    return sha


def _join(parent: dict[str, str], a: str, b: str) -> None:
    """Union by the smaller sha256: a unit's id is its smallest member, whatever the order of joins."""
    ra, rb = _root(parent, a), _root(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)
