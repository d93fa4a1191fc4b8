"""Splitters a plugin author might configure (``split._target_=tests.splitters.X``): the engine must
refuse every one whose train, val and test share a document, and run the honest one."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict

from prompt_opt_api import Pair
from tasks.pair_splits import PairSplitter, SplitConfig, split_pairs


class ValIsTest(PairSplitter):
    """Selects on the test split: val is the test split itself."""

    def split(self, examples, only=None):
        pairs, too_small = super().split(examples, only)
        return [dataclasses.replace(p, val=p.test) for p in pairs], too_small


class PerPair(PairSplitter):
    """Draws each pair's split on its own, from (seed, pair, image): a page can be test for one
    pair and train for its sibling."""

    def split(self, examples, only=None):
        by_pair = defaultdict(list)
        for ex in examples:
            by_pair[ex.pair_key].append(ex)
        pairs = []
        for key in sorted(k for k in by_pair if not only or k in only):
            rows = by_pair[key]
            images = sorted({e.image_sha256 for e in rows},
                            key=lambda sha: hashlib.sha256(f"{self.config.seed}/{key}/{sha}".encode()).hexdigest())
            n_train, n_val = int(len(images) * 0.4), int(len(images) * 0.3)
            cut = {"train": images[:n_train], "val": images[n_train : n_train + n_val],
                   "test": images[n_train + n_val :]}
            parts = {name: tuple(e for e in rows if e.image_sha256 in shas) for name, shas in cut.items()}
            pairs.append(Pair(rows[0].doc_class, rows[0].question_type, **parts))
        return pairs, []


class BySha256Only(PairSplitter):
    """Splits by document but takes no notice of near-duplicates, whatever its settings say."""

    def split(self, examples, only=None):
        return split_pairs(examples, SplitConfig(self.config.train, self.config.val, self.config.seed, None), only)


class OtherSeed(PairSplitter):
    """An honest splitter of a plugin author: the project's split, with its seed shifted."""

    def split(self, examples, only=None):
        return split_pairs(examples, dataclasses.replace(self.config, seed=self.config.seed + 7), only)
