"""One pair's story for the reports, kept in ``run.json`` (``RunRecord.pairs``).

Built from the pair's trial records and its result row: best-so-far val CER against
evaluations, the best full-val candidates, the winner's per-example test CERs and worst
test errors with their pages, each author's best (a panel's members with their test CER),
the candidates disqualified for carrying a test-only answer (left out of the curve and
the best), and the pair's OCR ceiling (``optimize.ocr_ceiling.PairCeiling``) and its constant answer
(``optimize.constant_answer.ConstantAnswer``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from optimize.constant_answer import ConstantAnswer
from optimize.error_classes import winner_error_classes
from optimize.ocr_ceiling import PairCeiling
from optimize.result_row import ResultRow
from optimize.run_record import candidate_key
from prompt_opt_api import FULL_VAL, Pair


def pair_digest(pair: Pair, records: Sequence[dict[str, Any]], row: ResultRow, top_k: int = 5,
                worst_k: int = 3, ceiling: PairCeiling | None = None,
                constant: ConstantAnswer | None = None) -> dict[str, Any]:
    """The digest of ``pair`` (module docstring) from its trial ``records``, result ``row``, OCR
    ``ceiling`` and ``constant`` answer (None: not measured)."""
    winner = row.prompt
    disqualified = row.disqualified or []
    excluded = {(d["prompt"], tuple(d.get("demo_rows") or ())) for d in disqualified}
    curve, candidates, test = _val_curve(pair, records, winner, excluded)
    # Stable sort: on equal CER the earliest first, as ``pick_best`` chooses.
    top = sorted(candidates.values(), key=lambda r: r["cer"])[:top_k]
    predictions = test["predictions"] if test else []
    return {
        "n_val": len(pair.val),
        "n_test": len(pair.test),
        "curve": curve,
        "top": [{"prompt": r["prompt"], "val_cer": r["cer"], "origin": r["origin"], "author": r.get("author", ""),
                 "n_demos": r.get("n_demos", 0), **_demo_settings(r)} for r in top],
        "test_cers": [p["cer"] for p in predictions],
        "worst": _worst(pair, predictions, worst_k),
        "by_author": row.by_author or {},
        # the winner as the prompt book has it (demo images relative to the task CSV's folder)
        "winner": row.book_entry or {},
        "disqualified": [{k: d[k] for k in ("prompt", "origin", "val_cer", "reason")} for d in disqualified],
        "status": row.status,  # its notes: the split, disqualified candidates, no {question} in the winner
        "error_classes": winner_error_classes(records, winner, len(pair.val)),  # the winner's wrong answers, by kind
        "ceiling": ceiling.to_json() if ceiling is not None else None,  # a perfect reader of the page text
        "constant_answer": constant.to_json() if constant is not None else None,  # a reader that never looks
    }


def _demo_settings(record: dict[str, Any]) -> dict[str, Any]:
    """A candidate's demo cut, distinct answers, answer shapes and length cut, as its trial record names them
    (only when set)."""
    return {k: record[k] for k in ("demo_chars", "distinct_answers", "answer_shapes", "answer_max_chars")
            if record.get(k)}


def _val_curve(pair: Pair, records: Sequence[dict[str, Any]], winner: str | None,
               excluded: set[tuple[str, tuple[str, ...]]],
               ) -> tuple[list[list[float]], dict[tuple[str, tuple[str, ...]], dict[str, Any]], dict[str, Any] | None]:
    """Best-so-far full-val CER against evaluations spent, the full-val candidates (first
    record of each), and the winner's test record."""
    curve: list[list[float]] = []
    candidates: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    best, spent, test = math.inf, 0, None
    for rec in records:
        if rec["split"] == "test":
            # The winner's test score comes first; a panel's members' bests may follow it.
            if test is None or (test["prompt"] != winner and rec["prompt"] == winner):
                test = rec
            continue
        used = rec.get("evaluations_so_far")
        spent = spent + rec["n"] if used is None else used  # a record from before the count: approximate
        if rec["split"] == FULL_VAL and rec["n"] == len(pair.val) and candidate_key(rec) not in excluded:
            best = min(best, rec["cer"])
            curve.append([spent, best])
            candidates.setdefault((rec["prompt"], tuple(rec.get("demo_rows") or ())), rec)
    if curve and spent > curve[-1][0]:
        curve.append([spent, best])  # what was spent after the last full-val score
    return curve, candidates, test


def _worst(pair: Pair, predictions: Sequence[dict[str, Any]], worst_k: int) -> list[dict[str, Any]]:
    """The winner's largest test errors, with the question and the page they came from."""
    examples = {e.source_row: e for e in pair.test}
    worst = []
    for p in sorted((p for p in predictions if p["cer"] > 0), key=lambda p: -p["cer"])[:worst_k]:
        example = examples.get(p["row"])
        worst.append({
            "row": p["row"], "answer": p["answer"], "prediction": p["prediction"], "cer": p["cer"],
            "question": example.question if example else "",
            "image": str(example.image) if example else None,
            "bbox": list(example.bbox) if example and example.bbox else None,
        })
    return worst
