"""The OCR ceiling of a run's pairs: the CER of a perfect reader of the page text the answer
model reads, beside each winner's CER in ``run.json``, the report and the run's closing lines.

For an answer model that reads text (``AnswerModel.page_text``: Tesseract's text for
``ocr_llm``), each example's ceiling is its page's best-span CER (``optimize.best_span``): the
lowest CER, under the run's metric, between the answer and any span of that page's text. No
prompt makes the model beat it on average (a reader that writes characters not on the page
could, by luck). A pair's ceiling is measured on its test split (where the winner is scored)
and its val split (where the winner was chosen), from the page text the run read already:
the model's own cache of it (``ocr_llm``'s OCR text in the store), so it costs no OCR and no
model call, milliseconds a pair. A pair with no winner scored on test gets none. For a model
that reads pixels there is no page text and no such ceiling: each pair says so (``applies``
false, with the reason). Nor is there one for a metric without a callable ``normalize()``:
the spans are searched in the metric's own form of the text, and without it the minimum found
is not the metric's (a search that folded case would miss a span that matches only with its
case kept), so each pair says that instead.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from optimize.best_span import best_span
from optimize.leak_check import metric_normalizer
from prompt_opt_api import AnswerModel, Example, Metric, Pair, reads_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CeilingPoint:
    """One example's best-span CER, named by its CSV row (as the runs' predictions are)."""

    row: str
    cer: float
    span: str


@dataclass(frozen=True)
class SplitCeiling:
    """One split's ceiling: the mean best-span CER and each example's best span."""

    mean: float
    points: list[CeilingPoint]

    @property
    def n(self) -> int:
        return len(self.points)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> SplitCeiling | None:
        if data is None:
            return None
        return cls(mean=float(data["mean"]), points=[CeilingPoint(**p) for p in data.get("points") or []])


@dataclass(frozen=True)
class PairCeiling:
    """A pair's OCR ceiling in ``run.json``'s digest (``ceiling``).

    Attributes:
        applies: Whether the answer model reads text (False: it reads pixels, no ceiling).
        reason: Why none applies.
        test: The ceiling on the pair's test split (None: no winner was scored on test).
        val: The ceiling on its val split (None: no winner was chosen on the full val split).
        seconds: How long measuring it took.
    """

    applies: bool
    reason: str = ""
    test: SplitCeiling | None = None
    val: SplitCeiling | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> PairCeiling | None:
        """The ceiling a digest holds; None for a digest without one (written before ceilings were)."""
        if not data:
            return None
        return cls(applies=bool(data["applies"]), reason=str(data.get("reason", "")),
                   test=SplitCeiling.from_json(data.get("test")), val=SplitCeiling.from_json(data.get("val")),
                   seconds=float(data.get("seconds", 0.0)))


def no_ceiling_reason(model_name: str) -> str:
    return f"{model_name} reads pixels, not text: no OCR ceiling applies"


def no_normalize_reason(metric: Metric) -> str:
    return (f"the metric {type(metric).__name__} has no normalize(): the spans of the page text cannot be searched "
            "in its form, so no exact OCR ceiling can be claimed")


def split_ceiling(examples: Iterable[Example], page_text: Callable[[Example], str | None], metric: Metric,
                  normalize: Callable[[str], str] | None = None) -> SplitCeiling:
    """Each example's best span of its page text, and their mean (NaN for no example)."""
    normalize = normalize or metric_normalizer(metric)
    points = []
    for ex in examples:
        match = best_span(ex.answer, page_text(ex) or "", metric, normalize)
        points.append(CeilingPoint(ex.source_row, match.cer, match.span))
    return SplitCeiling(statistics.mean(p.cer for p in points) if points else math.nan, points)


def run_ceilings(pairs: Sequence[Pair], rows: Mapping[str, Any], model: AnswerModel,
                 metric: Metric) -> dict[str, PairCeiling]:
    """Each pair's ceiling (module docstring); ``rows``: the pairs' result rows by pair key.

    A pair whose ceiling cannot be measured is logged and left out: the run's record is written
    without it.
    """
    if not reads_text(model):
        return {pair.key: PairCeiling(False, no_ceiling_reason(model.name)) for pair in pairs}
    if not callable(getattr(metric, "normalize", None)):
        return {pair.key: PairCeiling(False, no_normalize_reason(metric)) for pair in pairs}
    out = {}
    for pair in pairs:
        row = rows.get(pair.key)
        if row is None or not _is_number(row.get("cer")):
            continue  # no winner on test: its pages may not have been read
        try:
            out[pair.key] = _pair_ceiling(pair, _is_number(row.get("val_cer")), model, metric)
        except Exception:  # noqa: BLE001 - the results stand; a ceiling bug must not lose run.json
            log.exception("pair %r: the OCR ceiling was not measured", pair.key)
    return out


def _pair_ceiling(pair: Pair, with_val: bool, model: AnswerModel, metric: Metric) -> PairCeiling:
    started = time.perf_counter()
    normalize = metric_normalizer(metric)
    test = split_ceiling(pair.test, model.page_text, metric, normalize)
    val = split_ceiling(pair.val, model.page_text, metric, normalize) if with_val else None
    seconds = time.perf_counter() - started
    log.debug("pair %r: OCR ceiling measured in %.1f ms", pair.key, 1000 * seconds)
    return PairCeiling(True, test=test, val=val, seconds=round(seconds, 4))


@dataclass(frozen=True)
class CeilingSummary:
    """Winners' test CER against the ceiling over the pairs that have both.

    Attributes:
        n: Pairs with a test CER and a test ceiling.
        mean_cer: Their winners' mean test CER.
        mean_ceiling: Their mean test ceiling.
        no_text: Why no ceiling applies, when none of the pairs has one for that reason (a
            model that reads pixels); "" otherwise.
    """

    n: int = 0
    mean_cer: float = math.nan
    mean_ceiling: float = math.nan
    no_text: str = ""

    @property
    def gap(self) -> float:
        return self.mean_cer - self.mean_ceiling

    def line(self) -> str:
        """One line: the means and the gap, why no ceiling applies, or "" when no pair has one."""
        if self.n:
            return (f"OCR ceiling (a perfect reader of the page text): mean test CER {self.mean_cer:.4f} against "
                    f"a mean ceiling of {self.mean_ceiling:.4f} over {self.n} pair(s), gap {self.gap:+.4f}")
        return self.no_text


def summarize(cells: Iterable[tuple[Any, PairCeiling | None]]) -> CeilingSummary:
    """The summary over (winner's test CER, the pair's ceiling) of each pair."""
    cers, ceilings, reasons = [], [], set()
    for cer, ceiling in cells:
        if ceiling is not None and not ceiling.applies:
            reasons.add(ceiling.reason)
        elif ceiling is not None and ceiling.test is not None and _is_number(cer):
            cers.append(float(cer))
            ceilings.append(ceiling.test.mean)
    if cers:
        return CeilingSummary(len(cers), statistics.mean(cers), statistics.mean(ceilings))
    return CeilingSummary(no_text="; ".join(sorted(reasons)))


def _is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
