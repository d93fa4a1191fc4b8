"""optimize.stats: the one bootstrap, its paired form, and the robust summaries beside the mean."""

import math

import pytest

from optimize.stats import bootstrap_interval, clipped_mean, median, paired_bootstrap_interval


def test_bootstrap_interval_keeps_the_numbers_results_files_wrote():
    # pinned from the engine's interval before it moved here (seed 0, 2000 resamples):
    # results written before and after the move agree
    assert bootstrap_interval([0.0, 0.1, 0.5, 1.2, 0.3]) == pytest.approx((0.1, 0.84), abs=1e-12)


def test_bootstrap_interval_is_seeded_narrows_with_confidence_and_handles_edges():
    values = [0.0, 0.2, 0.9, 0.1, 0.4, 0.0, 1.5]
    low, high = bootstrap_interval(values)
    assert low < sum(values) / len(values) < high and bootstrap_interval(values) == (low, high)
    low80, high80 = bootstrap_interval(values, confidence=0.8)
    assert low < low80 and high80 < high
    assert bootstrap_interval(values, seed=1) != (low, high)
    assert bootstrap_interval([0.25, 0.25]) == (0.25, 0.25)
    assert all(math.isnan(v) for v in bootstrap_interval([]))


def test_paired_interval_resamples_items_together():
    # every item 0.1 better than its baseline: paired, the difference is certain; the same
    # values compared unpaired would span zero (the items' own spread dominates)
    baseline = [0.1, 0.5, 0.9, 0.3, 0.7, 1.1]
    better = [b - 0.1 for b in baseline]
    low, high = paired_bootstrap_interval(better, baseline)
    assert low == pytest.approx(-0.1) and high == pytest.approx(-0.1)
    assert bootstrap_interval(better)[1] > bootstrap_interval(baseline)[0]  # unpaired intervals overlap
    assert paired_bootstrap_interval([1, 1, 1, 1], [0, 1, 0, 1])[0] == 0.0  # one tie in two: not clearly above 0
    with pytest.raises(ValueError, match="paired"):
        paired_bootstrap_interval([1.0, 2.0], [1.0])


def test_clipped_mean_and_median_resist_one_chatty_answer():
    values = [0.0, 0.1, 0.2, 25.0]
    assert clipped_mean(values) == pytest.approx(1.3 / 4) and clipped_mean(values, at=0.15) == pytest.approx(0.4 / 4)
    assert median(values) == pytest.approx(0.15)
    assert math.isnan(clipped_mean([])) and math.isnan(median([]))
