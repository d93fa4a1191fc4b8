"""Group examples into doc class × question type pairs, split by document for the whole task.

One split per task: a page (and every near-duplicate of it, ``prompt_opt_api.page_units``)
is train, val or test for every pair it appears in, so no pair's test page is a page an
optimizer saw under a sibling pair (the same document, another question type). Pages are
taken in an order drawn from the seed and their content (sha256) alone; each goes to the
split its pairs need most (each pair aims at the ``train``/``val`` shares of its own
pages), so every pair gets train, val and test pages when it has enough of them. The split
depends neither on row order nor on which pairs are selected (``pairs=`` filters after
splitting).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prompt_opt_api import Example, Pair, TaskError
from prompt_opt_api.page_units import NEAR_DUPLICATE_COSINE, PageUnits, page_units

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class PairSelectionError(TaskError):
    """A requested pair does not exist, two pairs display alike, or nothing is left to run."""


@dataclass(frozen=True)
class SplitConfig:
    """Shares of each pair's documents for train / val (test gets the rest), the seed, and
    the near-duplicate threshold.

    Small pairs, explicitly: with 3+ documents each split gets at least one; with exactly
    2 train is empty (val 1, test 1: optimizers that need training examples get none); a
    pair with 1 document cannot be held out and is reported as skipped, never scored on data
    an optimizer saw. A pair whose documents the task's split puts in fewer splits than it
    needs (its pages all wanted by sibling pairs elsewhere) is skipped the same way.

    Attributes:
        near_duplicate_cosine: Pages whose ``page-gray16/v1`` cosine reaches this are one
            document (``prompt_opt_api.page_units``); None groups by sha256 only.
    """

    train: float = 0.4
    val: float = 0.3
    seed: int = 0
    near_duplicate_cosine: float | None = NEAR_DUPLICATE_COSINE

    def __post_init__(self) -> None:
        threshold = self.near_duplicate_cosine
        if threshold is not None and not 0 < threshold < 1:
            raise ValueError(f"near_duplicate_cosine must be above 0 and below 1, or None; not {threshold!r}")


def _unit_order_key(seed: int, unit: str) -> str:
    blob = json.dumps({"seed": seed, "unit": unit}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _allot(n: int, cfg: SplitConfig) -> tuple[int, int, int]:
    """How many of a pair's ``n`` documents (n >= 2) it aims to have in train, val and test."""
    if n == 2:
        return 0, 1, 1
    n_train = max(1, math.floor(n * cfg.train))
    n_val = max(1, math.floor(n * cfg.val))
    while n_train + n_val > n - 1:  # keep at least one test document
        if n_train >= n_val and n_train > 1:
            n_train -= 1
        else:
            n_val -= 1
    return n_train, n_val, n - n_train - n_val


def _group_by_pair(examples: Sequence[Example]) -> dict[str, list[Example]]:
    """Examples by pair, keyed by display name once it is known to be unambiguous.

    A pair is the ``(doc_class, question_type)`` tuple; results files and the store name
    it ``"<doc type> <question type>"``, so two tuples that display alike (``"A B","C"``
    and ``"A","B C"``) would be merged silently: that is an error naming a row of each.
    """
    by_identity: dict[tuple[str, str], list[Example]] = defaultdict(list)
    for ex in examples:
        by_identity[ex.pair_identity].append(ex)
    grouped: dict[str, list[Example]] = {}
    clashes: list[str] = []
    for identity, rows in by_identity.items():
        key = rows[0].pair_key
        if key in grouped:
            other = grouped[key][0]
            clashes.append(
                f"doc_class={other.doc_class!r} question_type={other.question_type!r} ({other.source_row}) and "
                f"doc_class={identity[0]!r} question_type={identity[1]!r} ({rows[0].source_row}) "
                f"would both be named {key!r}"
            )
            continue
        grouped[key] = rows
    if clashes:
        raise PairSelectionError(
            "two pairs display alike in the results; rename a doc class or question type:\n  " + "\n  ".join(clashes)
        )
    return grouped


def assign_units(grouped: Mapping[str, Sequence[Example]], units: PageUnits, cfg: SplitConfig) -> dict[str, str]:
    """Each unit's split (``train``, ``val`` or ``test``), one for the whole task, in the
    seeded content order.

    Units are taken in the seeded content order; each goes to the split the pairs it
    appears in need most: first the split that the most of them still lack entirely, then
    the largest shortfall against their targets (``_allot``), each pair weighted by one
    over its size; train before val before test on a tie.
    """
    pairs_of: dict[str, list[str]] = defaultdict(list)
    target: dict[str, tuple[int, int, int]] = {}
    size: dict[str, int] = {}
    for key in sorted(grouped):
        own = sorted({units.unit_of[ex.image_sha256] for ex in grouped[key]})
        if len(own) >= 2:
            target[key], size[key] = _allot(len(own), cfg), len(own)
        for unit in own:
            pairs_of[unit].append(key)
    have = {key: [0, 0, 0] for key in target}
    split_of: dict[str, str] = {}
    for unit in sorted(pairs_of, key=lambda u: _unit_order_key(cfg.seed, u)):
        keys = [k for k in pairs_of[unit] if k in target]

        def need(s: int, keys=keys) -> tuple[int, float, int]:
            lacking = sum(have[k][s] == 0 and target[k][s] > 0 for k in keys)
            shortfall = sum((target[k][s] - have[k][s]) / size[k] for k in keys)
            return lacking, shortfall, -s

        chosen = max(range(len(SPLITS)), key=need)
        for k in keys:
            have[k][chosen] += 1
        split_of[unit] = SPLITS[chosen]
    return split_of


def split_pairs(
    examples: Sequence[Example], cfg: SplitConfig, only: Sequence[str] | None = None
) -> tuple[list[Pair], list[tuple[str, str]]]:
    """Build the pairs to run, split by document for the whole task (see the module's docstring).

    Args:
        examples: Validated examples.
        cfg: Split shares, seed and near-duplicate threshold.
        only: Pair keys (``"<doc_class> <question_type>"``) to keep; None or empty keeps all.

    Returns:
        (pairs sorted by key, [(pair key, reason)] for pairs too small to evaluate).

    Raises:
        PairSelectionError: if ``only`` names a pair that does not exist, or nothing is left.
        TaskError: a page that cannot be read for its signature.
    """
    grouped = _group_by_pair(examples)
    if only:
        unknown = [k for k in only if k not in grouped]
        if unknown:
            raise PairSelectionError(
                f"pairs not in the task: {unknown}; available: {sorted(grouped)}"
            )
    units = page_units(examples, cfg.near_duplicate_cosine)
    split_of = assign_units(grouped, units, cfg)  # over every pair: filtering does not move a page
    selected = sorted(k for k in grouped if not only or k in set(only))
    if not selected:
        raise PairSelectionError("no pairs to run: the task is empty after filtering")
    pairs: list[Pair] = []
    too_small: list[tuple[str, str]] = []
    for key in selected:
        pair, reason = _pair_of(grouped[key], units, split_of)
        if pair is None:
            log.warning("pair %r skipped: %s", key, reason)
            too_small.append((key, reason))
            continue
        if pair.split_note:
            log.warning("pair %r: %s", key, pair.split_note)
        pairs.append(pair)
    if not pairs:
        raise PairSelectionError(f"no pair has enough images to hold out a test split: {too_small}")
    return pairs, too_small


def _pair_of(rows: Sequence[Example], units: PageUnits, split_of: Mapping[str, str]) -> tuple[Pair | None, str]:
    """The pair with its examples in their units' splits, or None and why it cannot be evaluated."""
    own_units = {units.unit_of[ex.image_sha256] for ex in rows}
    n_images = len({ex.image_sha256 for ex in rows})
    documents = (f"{_count(len(own_units), 'document')} ({n_images} images, near-duplicates grouped)"
                 if len(own_units) != n_images else _count(n_images, "image"))
    if len(own_units) < 2:
        return None, f"only {documents}: nothing can be held out for a test CER"
    rank = {unit: i for i, unit in enumerate(split_of)}  # the seeded order: independent of row order
    ordered = sorted(rows, key=lambda ex: (rank[units.unit_of[ex.image_sha256]], ex.image_sha256))
    parts = {name: tuple(ex for ex in ordered if split_of[units.unit_of[ex.image_sha256]] == name) for name in SPLITS}
    counts = {name: len({units.unit_of[ex.image_sha256] for ex in part}) for name, part in parts.items()}
    if not parts["val"] or not parts["test"]:
        return None, (f"its {documents} fall in " + ", ".join(f"{name} {n}" for name, n in counts.items())
                      + " under the task's document split: no val or no test split")
    note = "" if parts["train"] else f"{documents}: no train split (val {counts['val']}, test {counts['test']})"
    first = rows[0]
    return Pair(doc_class=first.doc_class, question_type=first.question_type, split_note=note, **parts), ""


class PairSplitter:
    """Hydra-configured splitter: ``conf/config.yaml``'s ``split`` group builds one.

    Args:
        train: Share of each pair's documents for train.
        val: Share for val (test gets the rest).
        seed: Split seed.
        near_duplicate_cosine: ``page-gray16/v1`` cosine at which two pages are one document;
            None: by sha256 only. Required, so that settings without it (a prompt book of a
            split that was not by document) cannot re-make a test split this splitter did
            not draw.
    """

    def __init__(self, train: float = 0.4, val: float = 0.3, seed: int = 0, *,
                 near_duplicate_cosine: float | None) -> None:
        self.config = SplitConfig(train=train, val=val, seed=seed, near_duplicate_cosine=near_duplicate_cosine)

    def split(self, examples: Sequence[Example], only: Sequence[str] | None = None
              ) -> tuple[list[Pair], list[tuple[str, str]]]:
        """``split_pairs`` with this splitter's shares, seed and threshold."""
        return split_pairs(examples, self.config, only)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
