"""``python -m optimize.apply BOOK CSV``: score a prompt book on any CSV of the task's shape.

Each pair of the CSV that the book has a prompt for is answered by the book's answer
model (built from the book's configuration) through the engine's evaluator, from a fresh
store unless ``--store`` names one, and scored with the book's metric. ``--split test``
re-makes the book's test split from the CSV (the task's own CSV: the parity check);
without it every row is scored (a new batch of documents). Prints per-pair CER with a
bootstrap interval and writes every prediction to a CSV (and the figures to JSON beside it).

A book is data (``prompt_opt_api.book_trust``): it names only registered components, never
where answers, keys, weights or data come from (the user's config and ``--model`` do);
its content must match its hash (else ``--trust``); ``--split test`` uses the user's split
and refuses a book whose demos are pages of that test split.

Exit codes: 0 done; 1 a pair failed; 2 bad input (book, CSV, demo images, no pair in
common), before any model loads; 3 the answer model cannot be used or reached.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("optimize.apply")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m optimize.apply",
        description="Score a prompt book (<model>_sep_*.book.json, written beside every results CSV) on a CSV of "
        "the task's shape: per-pair CER with a bootstrap interval, every prediction to a CSV.")
    parser.add_argument("book", type=Path, help="the prompt book (JSON)")
    parser.add_argument("csv", type=Path, help="a CSV of the task's shape (image_path, question, answer, doc_class, "
                        "question_type[, answer_bbox]) beside its images")
    parser.add_argument("--split", choices=("all", "test"), default="all",
                        help="test: only the book's test split of this CSV (its task's own CSV: the reported test "
                        "CER is reproduced); all (default): every row")
    parser.add_argument("--store", type=Path, default=None,
                        help="answer store to read and fill (default: a fresh one, deleted afterwards)")
    parser.add_argument("--out", type=Path, default=None,
                        help="predictions CSV (default: outputs/apply/<book>-<time>.csv under the working folder); "
                        "a .json with the "
                        "per-pair figures is written beside it")
    parser.add_argument("--demo-root", type=Path, default=None,
                        help="folder the demos' image paths are relative to: the folder of the task CSV the book "
                        "was made from (default: where the book says it was); demo images are read only inside it")
    parser.add_argument("--model", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the answer model over the book's and your config's (conf/model/): where it "
                        "runs and where its key and weights come from (api_base=http://gpu:8000/v1, api_key_env=..., "
                        "store_dir=..., weights.local_path=...), which a book never sets; or e.g. n_ctx=2048 "
                        "(answers may then differ from the reported ones)")
    parser.add_argument("--split-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of your split over conf/config.yaml's (--split test re-makes the test split "
                        "with yours, and refuses a book made with another), e.g. seed=3 if your run used it")
    parser.add_argument("--allow", action="append", default=[], metavar="MODULE_PREFIX",
                        help="also build answer-model, metric and split classes under this module prefix (your own "
                        "plugins; a book names only the components conf/ registers), e.g. --allow mycompany.models.")
    parser.add_argument("--trust", action="store_true",
                        help="apply a book whose settings or entries do not match its content_sha256, or that has "
                        "none (written by an earlier version); locations, components and metric are checked anyway")
    return parser.parse_args(argv)


@dataclass
class ApplyInputs:
    """What ``main`` scores, every check on the book made."""

    book: Any  # the PromptBook
    user: Any  # the user's choices (``prompt_opt_api.book_trust.UserChoices``)
    groups: dict[tuple[str, str], tuple]  # the CSV's examples per pair
    prompts: dict[tuple[str, str], Any]  # each pair's prompt as scored (demos read and checked)
    missing: list[str]  # the CSV's pairs not in the book
    metric: dict[str, Any] = field(default_factory=dict)  # the metric's settings
    models: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # each pair's answer-model settings


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from prompt_opt_api import EndpointUnusable, TaskError

    try:
        inputs = _load_inputs(args)
    except TaskError as err:
        log.error("%s", err)
        return 2
    if inputs.missing:
        log.warning("%d pair(s) of %s not in the book (not scored): %s; the book has: %s", len(inputs.missing),
                    args.csv, ", ".join(inputs.missing), ", ".join(e.key for e in inputs.book.entries))
    try:
        results = _score(args, inputs)
    except TaskError as err:  # the book's model or metric cannot be built: before any answer
        log.error("%s", err)
        return 2
    except EndpointUnusable as err:
        log.error("%s", err)
        return 3
    out = args.out or Path("outputs") / "apply" / f"{args.book.stem}-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    _write(out, results, inputs.missing)
    _print_table(results, inputs.missing)
    print(f"predictions: {out}", flush=True)
    return 1 if any(r.get("error") for r in results) else 0


def _user_choices(args: argparse.Namespace) -> Any:
    from omegaconf import OmegaConf

    from prompt_opt_api.book_trust import UserChoices

    def settings(dotlist: list[str]) -> dict[str, Any]:
        return OmegaConf.to_container(OmegaConf.from_dotlist(list(dotlist)))

    return UserChoices(model=settings(args.model), split=settings(args.split_setting), allow=tuple(args.allow),
                       trust=args.trust)


def _load_inputs(args: argparse.Namespace) -> ApplyInputs:
    """The book, checked as data, and what it scores; every refusal comes before any model is built."""
    from prompt_opt_api import TaskError, pair_key
    from prompt_opt_api.book_trust import (DEFAULT_LOADER, METRIC, TASK_LOADER, build, check_content,
                                           check_demo_cut, check_metric, component_config)
    from prompt_opt_api.prompt_book import load_book

    user = _user_choices(args)
    book = load_book(args.book)
    legacy = book.schema_version < 4
    if (problem := check_content(book, user.trust)) is not None:
        log.warning("%s (applied: --trust)", problem)
    metric = component_config(book.metric, METRIC, user, book.where, "metric", legacy=legacy)
    check_metric(metric, book.where)
    loader = component_config(book.loader or DEFAULT_LOADER, TASK_LOADER, user, book.where, "loader", legacy=legacy)
    task = build({**loader, "csv": str(args.csv)}, TASK_LOADER, user, f"{args.book}, task loader")
    groups = _test_groups(args, book, user, task) if args.split == "test" else _all_groups(task)
    have = set(book.pairs())
    prompts = {pair: book.prompt(*pair, demo_root=args.demo_root) for pair in groups if pair in have}
    missing = [pair_key(*pair) for pair in groups if pair not in have]
    if not prompts:
        raise TaskError(f"{args.csv}: none of its pairs is in {args.book} (the CSV has {', '.join(missing) or 'none'}; "
                        f"the book has {', '.join(e.key for e in book.entries) or 'none'})")
    models = _model_settings(book, prompts, user)
    for pair, config in models.items():
        check_demo_cut(book, book.entry(*pair), config, user)
    _check_demo_pages(book, prompts, groups, refuse=args.split == "test")
    return ApplyInputs(book, user, groups, prompts, missing, metric, models)


def _all_groups(task: Any) -> dict[tuple[str, str], tuple]:
    groups: dict[tuple[str, str], tuple] = {}
    for example in task.examples:
        groups[example.pair_identity] = groups.get(example.pair_identity, ()) + (example,)
    return groups


def _test_groups(args: argparse.Namespace, book: Any, user: Any, task: Any) -> dict[tuple[str, str], tuple]:
    """The test split of each pair, re-made from the CSV with the user's split (the book's must be it)."""
    from optimize.task_identity import task_id, task_sha256
    from prompt_opt_api import TaskError
    from prompt_opt_api.book_trust import SPLIT, build, user_split

    if not book.split.get("_target_"):
        raise TaskError(f"{args.book}: the book has no split settings; --split test needs them")
    split = user_split(book.split, user, book.where)
    found = task_id(task_sha256(task.examples), split, book.metric)
    if book.task_id and found != book.task_id:
        raise TaskError(f"{args.csv} is not the task {args.book} was made from (its data make {found}, the book "
                        f"says {book.task_id}): --split test re-makes the book's test split from that task's "
                        "own CSV only; score other documents without --split")
    pairs, _ = build(split, SPLIT, user, f"{args.book}, split").split(task.examples, [])
    return {p.identity: p.test for p in pairs if p.test}


def _model_settings(book: Any, prompts: dict, user: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Each scored pair's answer-model settings (the user's where they say where it runs)."""
    from prompt_opt_api.book_trust import ANSWER_MODEL, component_config

    settings = {}
    for pair in prompts:
        entry = book.entry(*pair)
        key = f"pair {entry.key!r} answer_model.config" if entry.answer_model else "answer_model.config"
        settings[pair] = component_config(book.model_of(entry)["config"], ANSWER_MODEL, user, book.where, key,
                                          overrides=user.model, legacy=book.schema_version < 4)
    return settings


def _check_demo_pages(book: Any, prompts: dict, groups: dict, refuse: bool) -> None:
    """A demo's own page among the documents scored makes their CER look better than it is: refused
    on the test split (``refuse``), a warning on other documents."""
    from prompt_opt_api.prompt_book import PromptBookError

    for pair, prompt in prompts.items():
        demos = prompt.demos + (prompt.retrieval.pool if prompt.retrieval is not None else ())
        pages = {d.image_sha256 for d in demos}
        shared = sum(ex.image_sha256 in pages for ex in groups[pair])
        if shared and refuse:
            raise PromptBookError(f"{book.where}, pair {book.entry(*pair).key!r}: {shared} of the {len(groups[pair])} "
                                  "test pages it is scored on are its own demo pages: refused (--split test scores "
                                  "held-out pages only)")
        if shared:
            log.warning("%s: %d of the %d documents scored are the demos' own pages (the task's train split?): "
                        "their CER is optimistic", book.entry(*pair).key, shared, len(groups[pair]))


def _score(args: argparse.Namespace, inputs: ApplyInputs) -> list[dict[str, Any]]:
    """Score each pair's prompt on its examples through the evaluator; one dict per pair."""
    import tempfile

    from optimize.answer_store import AnswerStore
    from optimize.evaluator import Budget, Evaluator
    from optimize.stats import bootstrap_interval
    from prompt_opt_api import EndpointUnusable, Pair
    from prompt_opt_api.book_trust import METRIC, build

    book = inputs.book
    metric = build(inputs.metric, METRIC, inputs.user, f"{args.book}, metric")
    models: dict[str, Any] = {}
    scratch = None if args.store else tempfile.TemporaryDirectory(prefix="apply-store-")
    store = AnswerStore(args.store or Path(scratch.name) / "store.sqlite")
    results = []
    try:
        for (doc_class, question_type), prompt in inputs.prompts.items():
            entry = book.entry(doc_class, question_type)
            model = _model_for(inputs.models[(doc_class, question_type)], book.model_of(entry), models, store,
                               inputs.user, f"{args.book}, answer model")
            examples = inputs.groups[(doc_class, question_type)]
            pool = prompt.retrieval.pool if prompt.retrieval is not None else ()
            pair = Pair(doc_class, question_type, train=tuple(dict.fromkeys(prompt.demos + pool)), val=(),
                        test=examples)
            result = {"pair": entry.key, "n": len(examples), "book_test_cer": entry.test_cer, "error": None,
                      "predictions": []}
            try:
                score = Evaluator(model, store, metric, pair, Budget(None), allow_test=True).score(prompt, examples)
            except EndpointUnusable:
                raise
            except Exception as err:  # noqa: BLE001 - one pair's failure is reported, the rest go on
                result["error"] = f"{type(err).__name__}: {err}"
                log.error("pair %r failed: %s", entry.key, result["error"])
            else:
                low, high = bootstrap_interval([r.cer for r in score.results])
                result.update(cer=score.cer, ci=[low, high], exact_match=score.exact_match,
                              predictions=[(ex, r) for ex, r in zip(examples, score.results)])
            results.append(result)
    finally:
        for model in models.values():
            model.close()
        store.close()
        if scratch is not None:
            scratch.cleanup()
    return results


def _model_for(config: dict[str, Any], model_info: dict[str, Any], models: dict[str, Any], store: Any, user: Any,
               where: str) -> Any:
    """The answer model built from ``config``, once per configuration; warns when it is not the one scored."""
    import json

    from prompt_opt_api.book_trust import ANSWER_MODEL, build

    key = json.dumps(config, sort_keys=True)
    if key not in models:
        model = build(config, ANSWER_MODEL, user, where)
        model.use_cache(store)
        identity = json.loads(json.dumps(model.cache_identity()))  # as JSON, like the book's
        booked = model_info.get("identity") or {}
        if identity != booked:
            differs = sorted(k for k in set(identity) | set(booked) if identity.get(k) != booked.get(k))
            log.warning("answer model %r is not the one the book was scored with (differs in: %s): its answers, "
                        "and so the CER, may differ from the reported ones", model.name, ", ".join(differs))
        models[key] = model
    return models[key]


def _write(out: Path, results: list[dict[str, Any]], missing: list[str]) -> None:
    from optimize.results_files import atomic_write_text, csv_text, write_json

    columns = ("pair", "row", "question", "answer", "prediction", "cer")
    rows = [{"pair": r["pair"], "row": ex.source_row, "question": ex.question, "answer": res.answer,
             "prediction": res.prediction, "cer": repr(res.cer)} for r in results for ex, res in r["predictions"]]
    atomic_write_text(out, csv_text(columns, rows))
    figures = {"pairs": [{k: v for k, v in r.items() if k != "predictions"} for r in results],
               "not_in_book": missing}
    write_json(out.with_suffix(".json"), figures)


def _print_table(results: list[dict[str, Any]], missing: list[str]) -> None:
    def fmt(value: Any) -> str:
        return "" if value is None else f"{value:.4f}"

    print(f"{'pair':40} {'n':>4} {'CER':>7}  {'95% interval':17} {'reported':>8}", flush=True)
    for r in results:
        if r["error"]:
            print(f"{r['pair']:40} {r['n']:>4} failed: {r['error'][:80]}")
            continue
        low, high = r["ci"]
        print(f"{r['pair']:40} {r['n']:>4} {r['cer']:7.4f}  [{low:.4f}, {high:.4f}] {fmt(r['book_test_cer']):>8}")
    scored = [r["cer"] for r in results if not r["error"]]
    if scored:
        print(f"mean CER over {len(scored)} pair(s): {sum(scored) / len(scored):.4f}")
    if missing:
        print(f"not in the book, not scored: {', '.join(missing)}")


if __name__ == "__main__":
    sys.exit(main())
