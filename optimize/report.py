"""Self-contained HTML reports of one run or of a task's collected runs.

One file, no scripts and nothing fetched: figures (matplotlib) and page crops are
embedded as base64 images, tables are pandas' HTML; every name and prompt is escaped, and
figure texts are drawn as written (no mathtext), so any pair name survives. Built from run
records (the ``run.json`` the run loop writes) and one table of result rows (text cells, as read
from the results CSVs, labelled with model, advisor and run id).

Sections per answer model: runs and their cost; the best prompt per pair (chosen by val
CER, reported with test CER, its interval, the OCR ceiling of its test pages with the gap,
``optimize.report_ceiling``, and the test CER of its constant answer, ``optimize.report_constant``);
an advisor x pair matrix of test CER with
the val-chosen winner marked; best-so-far val CER against answer-model evaluations per
optimizer; a leaderboard per pair; the worst remaining test errors with the page cropped
around the answer box. The figures are drawn in ``optimize.report_figures``, the cells
formatted in ``optimize.report_format``; a run's closing log lines are ``optimize.run_summary``'s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from optimize.run_books import book_file_name
from optimize.report_figures import THUMB_MAX, crop_data_uri, curves_section, figure_html, matrix_figure
from optimize.report_ceiling import ceiling_cells, ceiling_line
from optimize.report_constant import constant_cells, constant_line
from optimize.report_errors import error_classes_section
from optimize.report_format import esc, fmt, html_table, interval, mean, num, shade
from optimize.result_row import CER_COLUMN, PAIR_COLUMN, PROMPT_COLUMN
from optimize.results_files import OPTIMAL_SUFFIX, atomic_write_text, best_per_pair, results_file_name
from optimize.run_record import RunRecord
from prompt_opt_api.answer_shape import shapes_note
from prompt_opt_api.book_entry import demo_notes, retrieval_text

# Fits a 1,400-pixel-wide window: long prompts wrap in their cell, a table wider than the page
# scrolls inside its own box (.scroll) instead of widening the page.
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:2em;color:#222;max-width:1400px;box-sizing:border-box}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}h3{font-size:1em;margin-bottom:.3em}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top;white-space:nowrap}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.prompt{display:block;font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;overflow-wrap:anywhere;min-width:14em;max-width:34em}
.note{color:#666;font-size:.85em}.errors,.demos{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;padding:6px;max-width:440px;font-size:.85em;overflow-wrap:anywhere}.card img{display:block;max-width:100%}
.winner{margin:.5em 0 1.5em}.winner .prompt{max-width:100%}
figure{margin:1em 0}figure img{max-width:100%}
"""
_MAX_LEADERBOARD = 10


def write_report(path: Path, records: Sequence[RunRecord], table: Any, title: str,
                 task_info: dict[str, Any] | None = None, one_run: bool = False) -> Path:
    """Write the HTML report of ``records`` (one run or a task's runs) to ``path``, atomically.

    Args:
        path: The HTML file to write.
        records: Run records (``run.json``).
        table: Result rows of those runs (see ``optimize.collect.load_runs``).
        title: The page's heading.
        task_info: The task's ``task.json`` content, shown in the header when given.
        one_run: A run's own report, in its folder: it names only that run's prompt books
            (another run's books in a reused folder may be of another task).

    Returns:
        ``path``.
    """
    import matplotlib

    books = sorted(path.parent.glob("*.book.json"))
    if one_run:
        own = {book_file_name(n) for r in records for n in (r.results_csv, results_file_name(r.model, OPTIMAL_SUFFIX))}
        books = [b for b in books if b.name in own]
    parts = [f"<h1>{esc(title)}</h1>", _header(records, task_info, books)]
    data_dir = Path(task_info["csv"]).parent if task_info and task_info.get("csv") else None
    models = sorted(set(table["model"])) or [""]
    with matplotlib.rc_context({"text.parse_math": False}):  # names drawn as written: "$" starts no mathtext
        for model in models:
            rows = table[table["model"] == model]
            runs = [r for r in records if r.model == model]
            if len(models) > 1:
                parts.append(f"<h2 style='border:0;font-size:1.35em'>Answer model {esc(model)}</h2>")
            parts.append(_model_sections(runs, rows, data_dir))
    document = ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>\n"
                + "\n".join(parts) + "\n</body></html>\n")
    atomic_write_text(path, document)
    return path


def _header(records: Sequence[RunRecord], task_info: dict[str, Any] | None, books: Sequence[Path]) -> str:
    items = [f"generated {time.strftime('%Y-%m-%d %H:%M:%S')}", f"{len(records)} run(s)"]
    if task_info:
        items.append(f"task {esc(task_info.get('task_id', ''))}: {esc(task_info.get('csv', ''))}, "
                     f"{esc(task_info.get('examples', '?'))} examples")
        for key in ("split", "metric"):
            settings = {k: v for k, v in (task_info.get(key) or {}).items() if not k.startswith("_")}
            if settings:
                items.append(f"{key} " + ", ".join(f"{esc(k)} {esc(v)}" for k, v in settings.items()))
        if (task_info.get("split_units") or {}).get("summary"):
            items.append(f"split by document: {esc(task_info['split_units']['summary'])}")
    elif records:
        items.append(f"task {esc(records[0].task_id)}")
    deploy = ""
    if books:
        deploy = ("<p>What to deploy: the prompt book" + ("s " if len(books) > 1 else " ")
                  + ", ".join(f"<code>{esc(b.name)}</code>" for b in books)
                  + " beside this report: each winner whole (text, demos with their images' sha256), applied by "
                  "<code>models.prompt_runtime</code> or scored on new documents by "
                  "<code>python -m optimize.apply BOOK CSV</code>.</p>")
    return ("<p class='note'>" + "; ".join(items) + ". Winners are chosen by <b>val</b> CER and reported with "
            "their held-out <b>test</b> CER (bootstrap 95 % interval over the pair's test examples); "
            "test CER never picks a winner.</p>" + deploy)


def _model_sections(runs: Sequence[RunRecord], rows: Any, data_dir: Path | None) -> str:
    best = best_per_pair(rows)
    by_run = {r.run_id: r for r in runs}
    return "\n".join([
        "<h2>Runs and cost</h2>", _runs_table(runs, rows),
        "<h2>Best prompt per pair</h2>", _best_table(best, lambda run, pair: _digest(by_run, run, pair)),
        "<h2>Winners with their demos</h2>", _winners(best, by_run, data_dir),
        "<h2>Which advisor wins where</h2>", _matrix(rows, best, runs),
        "<h2>CER against answer-model evaluations</h2>", curves_section(runs),
        "<h2>Leaderboard per pair</h2>", _leaderboards(runs, rows),
        "<h2>Worst remaining errors</h2>", _worst_errors(best, by_run),
        "<h2>Why the winners miss</h2>", error_classes_section(best, lambda run, pair: _digest(by_run, run, pair)),
    ])


# -- tables --------------------------------------------------------------------------------------

def _runs_table(runs: Sequence[RunRecord], rows: Any) -> str:
    import pandas as pd

    data = []
    for run in runs:
        mine = rows[rows["run_id"] == run.run_id]
        status = mine["status"].astype(str)
        cost = run.cost
        data.append({
            "run id": run.run_id,
            "finished": run.finished_at,
            "advisor": run.advisor,
            "optimizer": run.optimizer,
            "mean test CER": fmt(run.mean_test_cer),
            "pairs ok": int(status.str.startswith("ok").sum()),
            "failed": int(status.str.startswith("failed").sum()),
            "skipped": int(status.str.startswith("skipped").sum()),
            "advisor calls": cost.advisor_calls,
            "advisor $": f"{float(cost.advisor_cost_usd or 0.0):.4f}",
            "answer-model evaluations": cost.answer_model_evaluations,
            "computed (last attempt)": cost.model_calls_this_attempt,
            "from cache (last attempt)": cost.cache_hits_this_attempt,
            "time s": fmt(run.elapsed_s, 1),
        })
    if not data:
        return "<p class='note'>no runs</p>"
    frame = pd.DataFrame(data)
    total = {"run id": "total", "advisor calls": int(frame["advisor calls"].sum()),
             "advisor $": f"{frame['advisor $'].astype(float).sum():.4f}",
             "answer-model evaluations": int(frame["answer-model evaluations"].sum())}
    if len(frame) > 1:  # as text, so the total row's gaps do not turn the counts into floats
        frame = pd.concat([frame.astype(str), pd.DataFrame([total]).astype(str)], ignore_index=True).fillna("")
    return html_table(frame)


def _best_table(best: Any, digest_of: Callable[[str, str], dict[str, Any]]) -> str:
    """The winners with their test CER, interval, OCR ceiling (``optimize.report_ceiling``) and constant answer
    (``optimize.report_constant``)."""
    if best.empty:
        return "<p class='note'>no pair has a test CER yet</p>"
    ceiling, constant = ceiling_cells(best, digest_of), constant_cells(best, digest_of)
    frame = best.assign(interval=[interval(lo, hi) for lo, hi in zip(best["cer_ci_low"], best["cer_ci_high"])],
                        **ceiling, **constant)
    frame = frame[[PAIR_COLUMN, PROMPT_COLUMN, "demos", CER_COLUMN, "interval", *ceiling, *constant, "val_cer",
                   "advisor", "optimizer", "author", "origin", "run_id", "n_val", "n_test"]]
    mean_test = mean(best[CER_COLUMN])
    blind = [str(pair) for pair, text in zip(best[PAIR_COLUMN], best[PROMPT_COLUMN])
             if "{question}" not in str(text)]
    warning = (f"<p class='note'>No {{question}} in the winning prompt of {esc(', '.join(blind))}: it sends the same "
               "text whatever each example's question asks.</p>") if blind else ""
    return (f"<p>{len(best)} pairs; mean test CER of the winners {fmt(mean_test)}.</p>"
            + ceiling_line(best, digest_of) + constant_line(best, digest_of)
            + html_table(frame, prompt_columns=(PROMPT_COLUMN, "demos")) + warning)


def _digest(by_run: dict[str, RunRecord], run_id: str, pair: str) -> dict[str, Any]:
    """One pair's digest in the run ``run_id`` (empty when the run or the pair is not there)."""
    run = by_run.get(run_id)
    return run.pairs.get(pair, {}) if run is not None else {}


def _winners(best: Any, by_run: dict[str, RunRecord], data_dir: Path | None) -> str:
    """Each winner that sends demos: its text and each demo's page and answer, as deployed."""
    out = ["<p class='note'>A winner with demos is deployed with them: each demo's page and answer go before the "
           "page asked about (the prompt book holds them, with each image's sha256); a winner whose replies are "
           "trimmed to the train answers' shapes or cut to their length is deployed with its trim.</p>"]
    for _, row in best.iterrows():
        pair = row[PAIR_COLUMN]
        winner = _digest(by_run, row["run_id"], pair).get("winner") or {}
        head = (f"<div class='winner'><h3>{esc(pair)} (test CER {esc(row[CER_COLUMN])})</h3>"
                f"<span class='prompt'>{esc(winner.get('template', row[PROMPT_COLUMN]))}</span>")
        shaped = _shapes_line(winner.get("answer_shapes"), winner.get("answer_max_chars"))
        rule = winner.get("retrieval")
        if rule:  # demos chosen per document: the rule, not pages
            text = retrieval_text(rule["k"], len(rule.get("pool") or []), rule.get("signature", ""),
                                  bool(rule.get("distinct_answers")), winner.get("demo_chars"))
            out.append(f"{head}<p>Demos chosen {esc(text)}.</p>{shaped}</div>")
            continue
        if not winner.get("demos"):
            if shaped:
                out.append(f"{head}{shaped}</div>")
            continue
        cards = []
        for demo in winner["demos"]:
            image = Path(demo["image"]) if data_dir is None else data_dir / demo["image"]
            thumb = crop_data_uri(str(image), None, THUMB_MAX)
            picture = f"<img alt='demo page' src='{thumb}'>" if thumb else "<p class='note'>(image not available)</p>"
            cards.append(f"<div class='card'>{picture}<div>{esc(demo['image'])}</div>"
                         f"<div>question: {esc(demo['question'])}</div>"
                         f"<div>answer: <b>{esc(demo['answer'])}</b></div></div>")
        notes = demo_notes(demo_chars=winner.get("demo_chars"))
        out.append(head + (f"<p>Demos: {esc(', '.join(notes))}.</p>" if notes else "") + shaped
                   + f"<div class='demos'>{''.join(cards)}</div></div>")
    if len(out) == 1:
        out.append("<p>No winner uses demos or answer shapes.</p>")
    return "\n".join(out)


def _shapes_line(shapes: Sequence[str] | None, max_chars: int | None = None) -> str:
    """A winner's answer shapes, listed, and its length cut (empty without either)."""
    if not shapes and not max_chars:
        return ""
    listed = f": {', '.join(repr(s) for s in shapes)}" if shapes else ""
    return f"<p>{esc(shapes_note(len(shapes or ()), max_chars).capitalize() + listed)}.</p>"


def _matrix(rows: Any, best: Any, runs: Sequence[RunRecord]) -> str:
    """Pairs x advisors: each advisor's val-chosen prompt's test CER; the overall winner starred.

    A panel run (several advisors in one run) also gives each member a column: the
    member's best prompt per pair by val CER within the panel's runs, with its test CER.
    """
    import pandas as pd

    pairs = sorted(set(rows.loc[rows[CER_COLUMN].astype(str) != "", PAIR_COLUMN]))
    if not pairs:
        return "<p class='note'>nothing to compare yet</p>"
    cells: dict[str, dict[str, float]] = {}
    for advisor in sorted(set(rows["advisor"])):
        chosen = best_per_pair(rows[rows["advisor"] == advisor])
        cells[advisor] = {k: num(v) for k, v in zip(chosen[PAIR_COLUMN], chosen[CER_COLUMN])}
    members: dict[str, dict[str, tuple[float, float]]] = {}
    for run in runs:
        for pair, digest in run.pairs.items():
            for author, entry in (digest.get("by_author") or {}).items():
                if entry.get("test_cer") is None or author in ("dataset", "manual", "rule", run.advisor):
                    continue
                column = members.setdefault(f"{author} (in {run.advisor})", {})
                rank = (round(num(entry.get("val_cer")), 4), num(entry["test_cer"]))
                if pair not in column or rank[0] < column[pair][0]:
                    column[pair] = rank
    cells.update({column: {k: v[1] for k, v in by_pair.items()} for column, by_pair in sorted(members.items())})
    values = pd.DataFrame({column: [by_pair.get(p, math.nan) for p in pairs] for column, by_pair in cells.items()},
                          index=pairs)
    # The winner across advisors (by val), and within a panel the member who wrote it.
    stars = {(r[PAIR_COLUMN], r["advisor"]) for _, r in best.iterrows()}
    stars |= {(r[PAIR_COLUMN], f"{r['author']} (in {r['advisor']})") for _, r in best.iterrows()}
    columns = list(values.columns)
    head = "<tr><th>pair</th>" + "".join(f"<th>{esc(c)}</th>" for c in columns) + "</tr>"
    body = []
    for pair in pairs:
        row_cells = []
        for column in columns:
            value = values.loc[pair, column]
            star = " ★" if (pair, column) in stars else ""
            text = "" if math.isnan(value) else f"{value:.3f}{star}"
            row_cells.append(f"<td class='num' style='background:{shade(value)}'>{text}</td>")
        body.append(f"<tr><td>{esc(pair)}</td>{''.join(row_cells)}</tr>")
    wins = [sum((p, c) in stars for p in pairs) for c in columns]
    foot = "<tr><th>pairs won</th>" + "".join(f"<th>{n}</th>" for n in wins) + "</tr>"
    table = f"<div class='scroll'><table class='matrix'>{head}{''.join(body)}{foot}</table></div>"
    note = ("<p class='note'>Test CER of each advisor's best prompt per pair (chosen by val CER across that "
            "advisor's runs; a panel's members by val CER within the panel's runs); ★ marks the prompt chosen "
            "across advisors, by val CER.</p>")
    winner = {pair: {c for p, c in stars if p == pair} for pair in pairs}
    return note + table + figure_html(matrix_figure(values, winner), "advisor x pair matrix of test CER")


def _leaderboards(runs: Sequence[RunRecord], rows: Any) -> str:
    import pandas as pd

    tested = {(r["run_id"], r[PAIR_COLUMN]): r for _, r in rows.iterrows()}
    pairs = sorted({key for run in runs for key in run.pairs})
    out = ["<p class='note'>Every run's best candidates on the full val split (at most "
           f"{_MAX_LEADERBOARD} a pair); only each run's winner was scored on test.</p>"]
    for pair in pairs:
        entries = []
        for run in runs:
            for rank, cand in enumerate(run.pairs.get(pair, {}).get("top", [])):
                row = tested.get((run.run_id, pair)) if rank == 0 else None
                entries.append({
                    "val CER": fmt(cand.get("val_cer")),
                    "test CER": "" if row is None else row[CER_COLUMN],
                    "interval": "" if row is None else interval(row["cer_ci_low"], row["cer_ci_high"]),
                    "advisor": run.advisor,
                    "optimizer": run.optimizer,
                    "author": cand.get("author", ""),
                    "demos": _demos_cell(cand),
                    "run": run.run_id,
                    "prompt": cand.get("prompt", ""),
                    "_key": (float(cand.get("val_cer", math.inf)), len(cand.get("prompt", ""))),
                })
        # candidates that carried a test-only answer: listed with the reason, never ranked
        barred = [d for run in runs for d in run.pairs.get(pair, {}).get("disqualified", [])]
        if not entries and not barred:
            continue
        entries.sort(key=lambda e: e["_key"])
        table = (html_table(pd.DataFrame(entries[:_MAX_LEADERBOARD]).drop(columns="_key"), prompt_columns=("prompt",))
                 if entries else "")
        notes = "".join(f"<p class='note'>disqualified (val CER {fmt(d.get('val_cer'))}, {esc(d.get('origin', ''))}): "
                        f"{esc(d.get('reason', ''))}: <span class='prompt'>{esc(d.get('prompt', ''))}</span></p>"
                        for d in barred)
        out.append(f"<h3>{esc(pair)}</h3>" + table + notes)
    return "\n".join(out)


def _demos_cell(candidate: dict[str, Any]) -> str:
    """A leaderboard candidate's demos per request, with its cut and distinct answers in words."""
    notes = demo_notes(bool(candidate.get("distinct_answers")), candidate.get("demo_chars"))
    if candidate.get("answer_shapes") or candidate.get("answer_max_chars"):
        notes.append(shapes_note(len(candidate.get("answer_shapes") or ()), candidate.get("answer_max_chars")))
    return f"{candidate.get('n_demos', 0)}" + (f" ({', '.join(notes)})" if notes else "")


def _worst_errors(best: Any, by_run: dict[str, RunRecord]) -> str:
    out = ["<p class='note'>The winner's largest test errors per pair (page cropped around the answer box, "
           "outlined in red).</p>"]
    for _, row in best.iterrows():
        pair = row[PAIR_COLUMN]
        worst = _digest(by_run, row["run_id"], pair).get("worst", [])
        if not worst:
            continue
        cards = []
        for item in worst:
            image = crop_data_uri(item.get("image"), item.get("bbox"))
            picture = (f"<img alt='page crop' src='{image}'>" if image
                       else "<p class='note'>(image not available)</p>")
            cards.append(
                f"<div class='card'>{picture}<div>CER {fmt(item.get('cer'))}; "
                f"{esc(str(item.get('row', '')).split(', ', 1)[-1])}</div>"  # the row, without the CSV's path
                f"<div>question: {esc(item.get('question', ''))}</div>"
                f"<div>answer: <b>{esc(item.get('answer', ''))}</b></div>"
                f"<div>prediction: <b>{esc(item.get('prediction', ''))}</b></div></div>")
        out.append(f"<h3>{esc(pair)} (test CER {esc(row[CER_COLUMN])})</h3><div class='errors'>{''.join(cards)}</div>")
    if len(out) == 1:
        out.append("<p>No test errors left.</p>")
    return "\n".join(out)
