import math

import pytest

from tasks.cer_metric import CerMetric


def test_identical_cyrillic_is_zero():
    assert CerMetric().cer("Иванов", "Иванов") == 0.0


def test_one_substitution_in_six_chars():
    # Иванов -> Иваноа: one substitution over 6 reference characters
    assert math.isclose(CerMetric().cer("Иванов", "Иваноа"), 1 / 6)


def test_deletion_and_insertion_counted_against_reference_length():
    assert math.isclose(CerMetric().cer("Петрова", "Петров"), 1 / 7)
    assert math.isclose(CerMetric().cer("Пётр", "Пётрр"), 1 / 4)


def test_empty_prediction_is_full_error():
    assert CerMetric().cer("Иванов", "") == 1.0
    assert CerMetric().cer("Иванов", "  «» ") == 1.0


def test_normalization_strips_quotes_punctuation_whitespace_and_case():
    metric = CerMetric()
    assert metric.cer("Иванов", " «ИВАНОВ». ") == 0.0
    assert metric.normalize("  45 06\n 123456 ") == "45 06 123456"
    assert metric.exact("770-001", '"770-001"')


def test_nfkc_folds_compatibility_characters():
    # fullwidth digits and the ligature ﬁ fold to plain forms
    assert CerMetric().normalize("１２３ ﬁ") == "123 fi"


def test_casefold_can_be_switched_off():
    assert CerMetric(casefold=False).cer("Иванов", "иванов") == pytest.approx(1 / 6)
    assert CerMetric(casefold=True).cer("Иванов", "иванов") == 0.0


def test_inner_punctuation_is_content():
    assert CerMetric().cer("01.02.1990", "01021990") == pytest.approx(2 / 10)


def test_empty_reference_is_rejected():
    with pytest.raises(ValueError):
        CerMetric().cer("«»", "x")


def test_raw_cer_exceeds_one_for_chatty_answers_unless_clipped():
    chatty = "Фамилия владельца документа: Иванов"
    assert CerMetric().cer("Иванов", chatty) > 1.0
    assert CerMetric(clip_at=1.0).cer("Иванов", chatty) == 1.0
    assert CerMetric(clip_at=1.0).cer("Иванов", "Иваноа") == pytest.approx(1 / 6)


@pytest.mark.parametrize("clip_at", [1e-9, 0, -1, 0.5])
def test_a_cap_below_one_is_refused(clip_at):
    """Below 1 a wrong answer would score better than an empty one (CER 1.0)."""
    with pytest.raises(ValueError, match="must be >= 1"):
        CerMetric(clip_at=clip_at)
    assert CerMetric(clip_at=1.0).cer("Иванов", "Петров") == CerMetric().cer("Иванов", "Петров") > 0.5  # kept exact
