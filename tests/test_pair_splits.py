import hashlib
from pathlib import Path

import pytest

from prompt_opt_api import Example
from tasks.docqa_csv import load_task
from tasks.pair_splits import PairSelectionError, SplitConfig, split_pairs
from tests.task_factory import make_task


def _images(examples):
    return {e.image_sha256 for e in examples}


def test_split_by_image_is_disjoint_and_complete(tmp_path):
    task = load_task(make_task(tmp_path, n_images=10))
    pairs, too_small = split_pairs(task.examples, SplitConfig())
    assert [p.key for p in pairs] == ["passport Номер", "passport Фамилия"] and not too_small
    for p in pairs:
        train, val, test = _images(p.train), _images(p.val), _images(p.test)
        assert not (train & val) and not (train & test) and not (val & test)
        assert len(train) + len(val) + len(test) == 10
        assert (len(train), len(val), len(test)) == (4, 3, 3)
    # one split for the task: a page is train, val or test for every pair it appears in
    assert [_images(p.test) for p in pairs][0] == [_images(p.test) for p in pairs][1]
    assert [_images(p.train) for p in pairs][0] == [_images(p.train) for p in pairs][1]


def test_split_is_deterministic_and_independent_of_row_order_and_filtering(tmp_path):
    task = load_task(make_task(tmp_path, n_images=10))
    a, _ = split_pairs(task.examples, SplitConfig(seed=1))
    b, _ = split_pairs(list(reversed(task.examples)), SplitConfig(seed=1))
    c, _ = split_pairs(task.examples, SplitConfig(seed=1), only=["passport Фамилия"])
    assert _images(a[1].test) == _images(b[1].test) == _images(c[0].test)
    other, _ = split_pairs(task.examples, SplitConfig(seed=2))
    assert any(_images(x.test) != _images(y.test) for x, y in zip(a, other))


def test_small_pairs_are_handled_explicitly(tmp_path):
    task = load_task(make_task(tmp_path / "two", n_images=2, with_second_pair=False))
    (pair,), _ = split_pairs(task.examples, SplitConfig())
    assert (len(pair.train), len(pair.val), len(pair.test)) == (0, 1, 1)
    assert "no train split" in pair.split_note

    three = load_task(make_task(tmp_path / "three", n_images=3, with_second_pair=False))
    (pair,), _ = split_pairs(three.examples, SplitConfig())
    assert (len(pair.train), len(pair.val), len(pair.test)) == (1, 1, 1)

    one = load_task(make_task(tmp_path / "one", n_images=1, with_second_pair=False))
    with pytest.raises(PairSelectionError, match="enough images"):
        split_pairs(one.examples, SplitConfig())


def test_unknown_pair_filter_is_an_error(tmp_path):
    task = load_task(make_task(tmp_path, n_images=3))
    with pytest.raises(PairSelectionError, match="available"):
        split_pairs(task.examples, SplitConfig(), only=["invoice Сумма"])


def _examples(pages_of):
    """Examples (no image files: grouped by sha256 only) of one doc class: question type -> page numbers."""
    out = []
    for question_type, pages in pages_of.items():
        for i in pages:
            out.append(Example(image=Path(f"/nowhere/{i}.png"), question="?", answer=f"a{i}", doc_class="form",
                               question_type=question_type, bbox=None,
                               image_sha256=hashlib.sha256(str(i).encode()).hexdigest(), source_row=f"row {len(out) + 1}"))
    return out


def test_small_pairs_beside_a_large_sibling_still_get_val_and_test():
    examples = _examples({"Фамилия": range(10), "Отчество": (3, 7), "Код": (1, 4, 8)})
    for seed in range(20):
        pairs, too_small = split_pairs(examples, SplitConfig(seed=seed, near_duplicate_cosine=None))
        sizes = {p.question_type: (len(p.train), len(p.val), len(p.test)) for p in pairs}
        assert not too_small and sizes["Код"] == (1, 1, 1) and sizes["Отчество"] == (0, 1, 1)
        assert all(abs(n - want) <= 1 for n, want in zip(sizes["Фамилия"], (4, 3, 3)))


def test_a_pair_the_shared_split_leaves_without_a_test_page_is_skipped_with_the_reason():
    # three pairs of two pages each, in a triangle: the third pair's pages are both val
    pairs, too_small = split_pairs(_examples({"A": (0, 1), "B": (1, 2), "C": (0, 2)}),
                                   SplitConfig(near_duplicate_cosine=None))
    assert len(pairs) + len(too_small) == 3 and too_small
    (key, reason), = too_small
    assert "under the task's document split: no val or no test split" in reason
    assert all(p.val and p.test for p in pairs)
