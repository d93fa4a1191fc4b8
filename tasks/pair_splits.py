"""Group examples into doc class × question type pairs and split each pair by image.

The split is deterministic: images are ordered by a sha256 of (seed, pair, image
sha256), so it depends neither on row order nor on which other pairs are selected.
No image is in two splits of a pair, so the test CER is measured on unseen documents.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from prompt_opt_api import Example, Pair, TaskError

log = logging.getLogger(__name__)


class PairSelectionError(TaskError):
    """A requested pair does not exist, two pairs display alike, or nothing is left to run."""


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of a pair's images for train / val (test gets the rest).

    Small pairs, explicitly: with 3+ images each split gets at least one image; with
    exactly 2 images train is empty (val 1, test 1: optimizers that need training
    examples get none); a pair with 1 image cannot be held out and is reported as
    skipped, never scored on data an optimizer saw.
    """

    train: float = 0.4
    val: float = 0.3
    seed: int = 0


def _image_order_key(seed: int, key: str, image_sha256: str) -> str:
    blob = json.dumps({"seed": seed, "pair": key, "image": image_sha256}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _allot(n: int, cfg: SplitConfig) -> tuple[int, int, int, str]:
    if n == 2:
        return 0, 1, 1, "2 images: no train split (val 1, test 1)"
    n_train = max(1, math.floor(n * cfg.train))
    n_val = max(1, math.floor(n * cfg.val))
    while n_train + n_val > n - 1:  # keep at least one test image
        if n_train >= n_val and n_train > 1:
            n_train -= 1
        else:
            n_val -= 1
    return n_train, n_val, n - n_train - n_val, ""


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


def split_pairs(
    examples: Sequence[Example], cfg: SplitConfig, only: Sequence[str] | None = None
) -> tuple[list[Pair], list[tuple[str, str]]]:
    """Build the pairs to run.

    Args:
        examples: Validated examples.
        cfg: Split fractions and seed.
        only: Pair keys (``"<doc_class> <question_type>"``) to keep; None or empty keeps all.

    Returns:
        (pairs sorted by key, [(pair key, reason)] for pairs too small to evaluate).

    Raises:
        PairSelectionError: if ``only`` names a pair that does not exist, or nothing is left.
    """
    grouped = _group_by_pair(examples)
    if only:
        unknown = [k for k in only if k not in grouped]
        if unknown:
            raise PairSelectionError(
                f"pairs not in the task: {unknown}; available: {sorted(grouped)}"
            )
        grouped = {k: v for k, v in grouped.items() if k in set(only)}
    if not grouped:
        raise PairSelectionError("no pairs to run: the task is empty after filtering")

    pairs: list[Pair] = []
    too_small: list[tuple[str, str]] = []
    for key in sorted(grouped):
        rows = grouped[key]
        by_image: dict[str, list[Example]] = defaultdict(list)
        for ex in rows:
            by_image[ex.image_sha256].append(ex)
        images = sorted(by_image, key=lambda sha: _image_order_key(cfg.seed, key, sha))
        if len(images) < 2:
            reason = f"only {len(images)} image: nothing can be held out for a test CER"
            log.warning("pair %r skipped: %s", key, reason)
            too_small.append((key, reason))
            continue
        n_train, n_val, _, note = _allot(len(images), cfg)
        if note:
            log.warning("pair %r: %s", key, note)

        def take(shas: list[str], by_image=by_image) -> tuple[Example, ...]:
            return tuple(ex for sha in shas for ex in by_image[sha])

        first = rows[0]
        pairs.append(
            Pair(
                doc_class=first.doc_class,
                question_type=first.question_type,
                train=take(images[:n_train]),
                val=take(images[n_train : n_train + n_val]),
                test=take(images[n_train + n_val :]),
                split_note=note,
            )
        )
    if not pairs:
        raise PairSelectionError(f"no pair has enough images to hold out a test split: {too_small}")
    return pairs, too_small


class PairSplitter:
    """Hydra-configured splitter: ``conf/config.yaml``'s ``split`` group builds one.

    Args:
        train: Fraction of a pair's images for train.
        val: Fraction for val (test gets the rest).
        seed: Split seed.
    """

    def __init__(self, train: float = 0.4, val: float = 0.3, seed: int = 0) -> None:
        self.config = SplitConfig(train=train, val=val, seed=seed)

    def split(self, examples: Sequence[Example], only: Sequence[str] | None = None
              ) -> tuple[list[Pair], list[tuple[str, str]]]:
        """``split_pairs`` with this splitter's fractions and seed."""
        return split_pairs(examples, self.config, only)
