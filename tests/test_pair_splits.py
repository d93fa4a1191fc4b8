import pytest

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
