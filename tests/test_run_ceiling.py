"""The OCR ceiling a run writes (optimize/ocr_ceiling.py): each pair's best-span CER of the page text
its answer model reads, in run.json's per-pair digest, beside each winner in the report with the gap,
and over the run in the report and the closing lines; one line instead for a model that reads pixels."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from optimize.ocr_ceiling import PairCeiling, run_ceilings, summarize
from optimize.result_row import ResultRow
from optimize.run_summary import summary_lines
from optimizers.manual import ManualOptimizer
from tasks.cer_metric import CerMetric
from tests.engine_harness import run_engine, task_pairs
from tests.scripted_answer_model import ScriptedAnswerModel, ScriptedReader
from tests.task_factory import draw_image, write_csv

# Each page's text is "<company>\nsum <total>" (ScriptedReader reads <image>.txt); the answers are
# ALPHA and 9.00 on every page. Best spans worked out by hand (of equally good spans, the one
# that ends first, then the shortest): the answer itself (0); one character misread, ALPH4 (alph,
# one deletion of 5: 0.2) or 9.0O (9.0, 1 of 4: 0.25); two, 4LPH4 (lph, 2 of 5: 0.4) or 9,0O
# (9,0: a substitution and a deletion, 0.5); no letter of ALPHA anywhere (1.0: no span beats
# answering nothing).
COMPANY = [("SHOP ALPHA TRADING", 0.0, "alpha"), ("SHOP ALPH4 TRADING", 0.2, "alph"),
           ("SHOP 4LPH4 TRADING", 0.4, "lph"), ("XYZ QRS", 1.0, "")]
TOTAL = [("9.00", 0.0, "9.00"), ("9,0O", 0.5, "9,0"), ("9.0O", 0.25, "9.0")]
COMPANY_PAIR, TOTAL_PAIR = "receipt company", "receipt total"
# "{question}" gets each answer one character short from the scripted model: ALPH, 9.0
WINNER_CER = {COMPANY_PAIR: 0.2, TOTAL_PAIR: 0.25}


def _receipts(root: Path, n: int = 12) -> Path:
    rows = []
    for i in range(n):
        draw_image(root / f"images/{i}.png", f"receipt {i}")
        company, total = COMPANY[i % 4][0], TOTAL[i % 3][0]
        (root / f"images/{i}.txt").write_text(f"{company}\nsum {total}", encoding="utf-8")
        rows.append([f"images/{i}.png", "Who issued it?", "ALPHA", "receipt", "company", ""])
        rows.append([f"images/{i}.png", "What is the total?", "9.00", "receipt", "total", ""])
    return write_csv(root / "task.csv", rows)


def _hand(pair_key: str, example) -> tuple[float, str]:
    """The hand-worked best span of ``example``'s page (its image's number picks the page text)."""
    i = int(Path(example.image).stem)
    _, cer, span = COMPANY[i % 4] if pair_key == COMPANY_PAIR else TOTAL[i % 3]
    return cer, span


def _run(tmp_path, model):
    return run_engine(tmp_path, ManualOptimizer(candidates=["{question}"]), model=model,
                      data=_receipts(tmp_path / "data"), report=True)


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_run_json_records_each_pairs_ceiling_on_test_and_val_from_the_page_text(tmp_path):
    run = _run(tmp_path, ScriptedReader())
    assert {p.key for p in run.pairs} == {COMPANY_PAIR, TOTAL_PAIR}
    for pair in run.pairs:
        ceiling = PairCeiling.from_json(run.run_json["pairs"][pair.key]["ceiling"])
        assert ceiling.applies and ceiling.reason == ""
        for split, examples in (("test", pair.test), ("val", pair.val)):
            measured = getattr(ceiling, split)
            hand = [_hand(pair.key, ex) for ex in examples]
            assert [(p.row, p.cer, p.span) for p in measured.points] == [
                (ex.source_row, cer, span) for ex, (cer, span) in zip(examples, hand)]
            assert measured.mean == statistics.mean(cer for cer, _ in hand)
        assert len({cer for cer, _ in map(lambda ex: _hand(pair.key, ex), pair.test)}) > 1  # a mean, not one value
        assert 0 <= ceiling.seconds < 1.0


def test_the_report_shows_the_ceiling_and_gap_beside_each_winner_and_the_means(tmp_path):
    run = _run(tmp_path, ScriptedReader())
    text = _text((run.out_dir / "report.html").read_text(encoding="utf-8"))
    ceilings = {}
    for pair in run.pairs:
        ceilings[pair.key] = statistics.mean(_hand(pair.key, ex)[0] for ex in pair.test)
        cer = WINNER_CER[pair.key]
        assert float(run.rows_by_key[pair.key]["cer"]) == cer
        # the best table's row: pair, prompt, test CER, interval, ceiling, gap, val CER
        row = re.search(rf"{pair.key} {{question}} {cer:.4f} \[[0-9., ]+\] (\S+) (\S+) ", text)
        assert row is not None, text[:3000]
        assert row.groups() == (f"{ceilings[pair.key]:.3f}", f"{cer - ceilings[pair.key]:+.3f}")
    mean_cer, mean_ceiling = statistics.mean(WINNER_CER.values()), statistics.mean(ceilings.values())
    assert (f"Mean test CER of the winners {mean_cer:.3f} against a mean OCR ceiling of {mean_ceiling:.3f} "
            f"over the same 2 pair(s): gap {mean_cer - mean_ceiling:+.3f}.") in text
    assert "No text ceiling" not in text
    assert (f"OCR ceiling (a perfect reader of the page text): mean test CER {mean_cer:.4f} against a mean ceiling "
            f"of {mean_ceiling:.4f} over 2 pair(s), gap {mean_cer - mean_ceiling:+.4f}"
            in summary_lines(run.record, run.summary.rows))


def test_a_model_that_reads_pixels_gets_one_line_no_text_ceiling_applies(tmp_path):
    run = _run(tmp_path, ScriptedAnswerModel())
    reason = "Scripted-VLM reads pixels, not text: no OCR ceiling applies"
    for pair in run.pairs:
        assert run.run_json["pairs"][pair.key]["ceiling"] == {"applies": False, "reason": reason, "test": None,
                                                               "val": None, "seconds": 0.0}
    html = (run.out_dir / "report.html").read_text(encoding="utf-8")
    assert _text(html).count(f"No text ceiling: {reason}.") == 1
    assert "<th>ceiling</th>" not in html and "<th>gap</th>" not in html and "OCR ceiling of" not in html
    assert reason in summary_lines(run.record, run.summary.rows)


def test_a_ceiling_that_cannot_be_measured_leaves_run_json_and_the_report_whole(tmp_path, caplog):
    data = _receipts(tmp_path / "data")
    model = ScriptedReader(exact_marker="?")  # every answer right (each question ends in "?"): the run reads no page text
    for page in (tmp_path / "data" / "images").glob("*.txt"):
        page.unlink()
    run = run_engine(tmp_path, ManualOptimizer(candidates=["{question}"]), model=model, data=data, report=True)
    assert [float(r["cer"]) for r in run.summary.rows] == [0.0, 0.0]
    assert all(digest["ceiling"] is None for digest in run.run_json["pairs"].values())
    assert sorted(r.getMessage() for r in caplog.records if "OCR ceiling" in r.getMessage()) == [
        f"pair {COMPANY_PAIR!r}: the OCR ceiling was not measured", f"pair {TOTAL_PAIR!r}: the OCR ceiling was not measured"]
    text = _text((run.out_dir / "report.html").read_text(encoding="utf-8"))
    assert "mean test CER of the winners 0.000" in text and "OCR ceiling" not in text



class _CountingReader(ScriptedReader):
    """A scripted reader that counts the pages whose text is asked for."""

    def __init__(self, **settings) -> None:
        super().__init__(**settings)
        self.read: list[str] = []

    def page_text(self, example) -> str:
        self.read.append(example.source_row)
        return super().page_text(example)


def test_the_ceiling_reads_only_the_pages_of_pairs_scored_on_test(tmp_path):
    pairs, _ = task_pairs(tmp_path, _receipts(tmp_path / "data"))
    company, total = sorted(pairs, key=lambda p: p.key)
    rows = {company.key: ResultRow(company.key, cer=0.2, val_cer=0.2),
            total.key: ResultRow(total.key, status="failed: RuntimeError: scripted")}  # no winner on test
    reader = _CountingReader()
    ceilings = run_ceilings(pairs, rows, reader, CerMetric())
    assert list(ceilings) == [company.key]  # the failed pair: no ceiling, none of its pages read
    assert sorted(reader.read) == sorted(ex.source_row for ex in (*company.test, *company.val))
    assert ceilings[company.key].test.mean == statistics.mean(_hand(company.key, ex)[0] for ex in company.test)


def test_the_ceiling_is_scored_under_the_runs_metric_and_its_normalization(tmp_path):
    pairs, _ = task_pairs(tmp_path, _receipts(tmp_path / "data"))
    for page in (tmp_path / "data" / "images").glob("*.txt"):
        page.write_text("shop alpha ALPH4\nsum 9.00", encoding="utf-8")
    company = next(p for p in pairs if p.key == COMPANY_PAIR)
    rows = {company.key: ResultRow(company.key, cer=0.2, val_cer=0.2)}

    def points(metric):
        return {(p.cer, p.span) for p in run_ceilings([company], rows, ScriptedReader(), metric)[company.key].test.points}

    assert points(CerMetric()) == {(0.0, "alpha")}  # case folded: ALPHA is on the page
    # case kept: "alpha" is 5 substitutions away, ALPH one deletion (0.2); a search that folded case
    # would pick "alpha" and score it 1.0
    assert points(CerMetric(casefold=False)) == {(0.2, "ALPH")}


class _RawCer:
    """A plugin metric with no ``normalize``: case-sensitive CER on the text as given."""

    def cer(self, reference: str, prediction: str) -> float:
        import jiwer

        return 1.0 if not prediction else float(jiwer.cer(reference, prediction))

    def exact(self, reference: str, prediction: str) -> bool:
        return reference == prediction


def test_a_metric_without_normalize_gets_no_ceiling_and_the_reason(tmp_path):
    pairs, _ = task_pairs(tmp_path, _receipts(tmp_path / "data"))
    company = next(p for p in pairs if p.key == COMPANY_PAIR)
    rows = {company.key: ResultRow(company.key, cer=0.2, val_cer=0.2)}
    # a search in a default form (case folded) would score "alpha" against ALPHA under this metric: 1.0 on a
    # page where a perfect reader copies ALPHA for 0; no exact ceiling can be claimed
    reason = ("the metric _RawCer has no normalize(): the spans of the page text cannot be searched in its form, "
              "so no exact OCR ceiling can be claimed")
    assert run_ceilings([company], rows, ScriptedReader(), _RawCer()) == {company.key: PairCeiling(False, reason)}
    assert summarize([(0.2, PairCeiling(False, reason))]).line() == reason


def test_the_default_metric_on_the_same_pair_keeps_its_ceiling(tmp_path):
    pairs, _ = task_pairs(tmp_path, _receipts(tmp_path / "data"))
    company = next(p for p in pairs if p.key == COMPANY_PAIR)
    rows = {company.key: ResultRow(company.key, cer=0.2, val_cer=0.2)}
    ceiling = run_ceilings([company], rows, ScriptedReader(), CerMetric())[company.key]
    assert ceiling.applies and ceiling.test.mean == statistics.mean(_hand(company.key, ex)[0] for ex in company.test)
