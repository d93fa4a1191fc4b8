"""The prompt book: written beside every results CSV, applied outside the framework with parity."""

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.openai_vlm import OpenAIVLMAnswerModel
from models.prompt_runtime import PromptRuntime
from prompt_opt_api.prompt_book import PromptBookError, content_sha256, load_book
from tasks.docqa_csv import load_task
from tests.cli_helpers import REPO, cli_env, run_cli
from scripts.fake_openai_server import FakeOpenAIServer
from tests.task_factory import make_task


def _apply(*args, timeout=300):
    """``python -m optimize.apply``; the scripted test model lives in tests/, so it is allowed by name."""
    return subprocess.run([sys.executable, "-m", "optimize.apply", *map(str, args), "--allow", "tests."], cwd=REPO,
                          env=cli_env(), capture_output=True, text=True, timeout=timeout)


def _rows(path):
    with path.open(encoding="utf-8", newline="") as fh:
        return {r["doc type question type"]: r for r in csv.DictReader(fh)}


def _fewshot_run(tmp_path, data):
    """A scripted few-shot run through the CLI: every winner sends two train demos."""
    proc = run_cli(tmp_path, data, "optimizer=fewshot", "optimizer.manual_candidates=[]", "model.demos_exact=true",
                   "optimizer.random_sets=3", "optimizer.swap_candidates=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp_path / "out"


@pytest.fixture
def fewshot_book(tmp_path):
    data = make_task(tmp_path / "data", n_images=10)
    out = _fewshot_run(tmp_path, data)
    return data, out, out / "Scripted-VLM_sep_none.book.json"


def test_a_fewshot_run_writes_books_whose_winners_carry_their_demos(fewshot_book, tmp_path):
    data, out, book_path = fewshot_book
    book = load_book(book_path)
    rows = _rows(out / "Scripted-VLM_sep_none.csv")
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    assert {e.key for e in book.entries} == set(rows) == {"passport Фамилия", "passport Номер"}
    train = {(e.image, e.question_type): e for e in load_task(data).examples}
    for entry in book.entries:
        row = rows[entry.key]
        assert entry.template == row["optimal prompt"] == "{question}" and len(entry.demos) == 2 == int(row["n_demos"])
        for demo in entry.demos:  # relative to the task CSV, with the bytes' hash and the demo's own answer
            assert demo.image.startswith("images/") and not Path(demo.image).is_absolute()
            source = train[((data.parent / demo.image).resolve(), entry.question_type)]
            assert (demo.image_sha256, demo.answer) == (source.image_sha256, source.answer)
        # the CSV shows the demos a person can read, the book has the test CER unrounded
        assert row["demos"] == "; ".join(f'{d.image}: "{d.answer}"' for d in entry.demos)
        assert f"{entry.test_cer:.4f}" == row["cer"] and entry.val_cer is not None
        assert (entry.optimizer, entry.advisor, entry.run_id) == ("fewshot", "none", run_id)
    assert book.answer_model["config"]["_target_"] == "tests.scripted_answer_model.ScriptedAnswerModel"
    assert book.split["_target_"] == "tasks.pair_splits.PairSplitter" and Path(book.task_csv) == data.resolve()
    # beside the run folder's OptimalPrompts CSV and the task folder's merged CSVs too, with the same entries
    (task_dir,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    for merged in (out / "Scripted-VLM_sep_OptimalPrompts.book.json", task_dir / "Scripted-VLM_sep_none.book.json",
                   task_dir / "Scripted-VLM_sep_OptimalPrompts.book.json"):
        assert load_book(merged).entries == book.entries, merged
    assert "Scripted-VLM_sep_OptimalPrompts.book.json" in (task_dir / "report.html").read_text(encoding="utf-8")
    assert book.loader["_target_"] == "tasks.docqa_csv.load_task" and "csv" not in book.loader
    assert "store_dir" not in json.dumps(book.answer_model["config"])  # no folder of this machine


def test_apply_reproduces_the_reported_test_cer_from_an_empty_store(fewshot_book, tmp_path):
    data, _, book_path = fewshot_book
    out = tmp_path / "applied.csv"
    proc = _apply(book_path, data, "--split", "test", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    book = load_book(book_path)
    assert {p["pair"]: p["cer"] for p in figures["pairs"]} == {e.key: e.test_cer for e in book.entries}
    assert figures["not_in_book"] == [] and "mean CER over 2 pair(s)" in proc.stdout
    with out.open(encoding="utf-8") as fh:
        predictions = list(csv.DictReader(fh))
    assert len(predictions) == sum(e.n_test for e in book.entries)


def test_apply_scores_new_documents_and_lists_pairs_not_in_the_book(fewshot_book, tmp_path):
    _, _, book_path = fewshot_book
    fresh = make_task(tmp_path / "new", n_images=3)  # a new batch: both pairs, every row scored
    with fresh.open(encoding="utf-8") as fh:
        text = fh.read()
    fresh.write_text(text + "images/0.png,Кем выдан?,МВД,passport,Кем выдан,\n", encoding="utf-8")
    out = tmp_path / "new.csv"
    proc = _apply(book_path, fresh, "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert sorted(p["n"] for p in figures["pairs"]) == [3, 3]
    assert figures["not_in_book"] == ["passport Кем выдан"]
    assert "1 pair(s) of" in proc.stderr and "not in the book (not scored): passport Кем выдан;" in proc.stderr
    assert all(p["cer"] == 0.0 for p in figures["pairs"])  # the scripted model answers the exact prompt exactly


def _edited(book_path, tmp_path, edit):
    """The book edited, its content hash recomputed (anyone can)."""
    data = json.loads(book_path.read_text(encoding="utf-8"))
    edit(data)
    data["content_sha256"] = content_sha256(data)
    path = tmp_path / "edited.book.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_bad_books_are_clear_errors_naming_the_file_and_entry(fewshot_book, tmp_path):
    data, _, book_path = fewshot_book
    book = load_book(book_path)
    demo = book.entries[0].demos[0]

    wrong_version = _edited(book_path, tmp_path, lambda d: d.update(schema_version=99))
    proc = _apply(wrong_version, data)
    assert proc.returncode == 2 and f"{wrong_version}: schema_version 99 is not supported" in proc.stderr

    fresh = make_task(tmp_path / "new", n_images=3)  # new documents: the demos still come from the task's folder
    proc = _apply(book_path, fresh, "--split", "test")  # another task's CSV cannot stand for the book's test split
    assert proc.returncode == 2 and f"{fresh} is not the task {book_path} was made from" in proc.stderr

    foreign = _edited(book_path, tmp_path, lambda d: d["metric"].update(_target_="builtins.print"))
    proc = _apply(foreign, data)  # a book is data: it names none but our components (and allowed ones)
    assert proc.returncode == 2 and "'builtins.print' is not a metric your config registers" in proc.stderr

    (data.parent / demo.image).rename(data.parent / "moved.png")
    proc = _apply(book_path, fresh)
    assert proc.returncode == 2
    assert f"{book_path}, pair {book.entries[0].key!r}, demo 1 ({demo.image}): image not found" in proc.stderr
    with pytest.raises(PromptBookError, match="image not found"):
        PromptRuntime(book_path).prompt(book.entries[0].doc_class, book.entries[0].question_type)

    (data.parent / "moved.png").write_bytes(b"other bytes")
    (data.parent / "moved.png").rename(data.parent / demo.image)
    proc = _apply(book_path, fresh)
    assert proc.returncode == 2 and f"demo 1 ({demo.image}): the image at" in proc.stderr
    assert "changed since the prompt was scored" in proc.stderr

    with pytest.raises(PromptBookError, match=r"no entry for pair 'passport Имя'; the book has: 'passport "):
        PromptRuntime(book_path).prompt("passport", "Имя")
    other = make_task(tmp_path / "other", n_images=3, with_second_pair=False)
    with other.open(encoding="utf-8") as fh:
        text = fh.read().replace("passport", "снилс")
    other.write_text(text, encoding="utf-8")
    proc = _apply(book_path, other)
    assert proc.returncode == 2 and "none of its pairs is in" in proc.stderr and "снилс Фамилия" in proc.stderr


def test_the_runtime_imports_and_builds_requests_without_heavy_libraries(tmp_path):
    data = make_task(tmp_path / "data", n_images=2, with_second_pair=False)
    code = f"""import sys, time
t = time.monotonic()
import models.prompt_runtime, models.ocr_llm
from models.openai_vlm import OpenAIVLMAnswerModel
from models.qwen2_vl import Qwen2VLAnswerModel
from prompt_opt_api import Prompt
from tasks.docqa_csv import load_task
seconds = time.monotonic() - t
ex = load_task({str(data)!r}).examples
for model in (OpenAIVLMAnswerModel(), Qwen2VLAnswerModel()):
    assert model.openai_request(Prompt("{{question}}", demos=ex[:1]), ex[1])["messages"]
heavy = ('hydra', 'omegaconf', 'torch', 'transformers', 'litellm', 'llama_cpp', 'pandas', 'dspy', 'textgrad')
print(round(seconds, 3), sorted(m for m in heavy if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=cli_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    seconds, heavy = proc.stdout.split(" ", 1)
    assert heavy.strip() == "[]", proc.stdout
    print(f"models.prompt_runtime imported in {seconds} s")  # the figure; a timed assert would be flaky


def test_runtime_messages_for_openai_vlm_equal_the_wire_request(tmp_path):
    """The book's request, built outside the framework, is byte for byte what model=openai_vlm sends."""
    from optimize.run_books import book_header, winner_entry, write_book
    from prompt_opt_api import Pair, Prompt
    from prompt_opt_api.prompt_book import PromptBook

    data = make_task(tmp_path / "data", n_images=4, with_second_pair=False)
    examples = load_task(data).examples
    with FakeOpenAIServer(require_images=True) as server:
        config = {"_target_": "models.openai_vlm.OpenAIVLMAnswerModel", "name": "Qwen2-VL-2B",
                  "model": "openai/stub-vlm", "api_base": server.url, "max_tokens": 32}
        model = OpenAIVLMAnswerModel(**{k: v for k, v in config.items() if k != "_target_"})
        pair = Pair("passport", "Фамилия", train=examples[:2], val=(), test=examples[2:])
        scored = Prompt("Прочитай. {question} Ответь только значением.", demos=examples[:2])
        header = book_header({"csv": str(data), "task_id": "t"}, model.name, model.cache_identity(), config)
        book = PromptBook(entries=(winner_entry(pair, scored, data.parent),), **header)
        write_book(tmp_path / "b.book.json", book)
        runtime = PromptRuntime(tmp_path / "b.book.json")  # the book alone, read back: its demos from disk
        built = runtime.messages("passport", "Фамилия", examples[3].image, examples[3].question)
        body = runtime.openai_request("passport", "Фамилия", examples[3].image, examples[3].question)
        model.answer([(scored, examples[3])])  # what the run scored, as the model sends it
    assert not server.errors
    wire = server.bodies[-1]
    assert json.dumps(built, ensure_ascii=False) == json.dumps(wire["messages"], ensure_ascii=False)
    assert {key: wire[key] for key in body} == body  # model, messages, temperature, max_tokens
    assert [m["role"] for m in built] == ["user", "assistant", "user", "assistant", "user"]


def test_the_apply_help_is_fast():
    started = time.monotonic()
    proc = _apply("--help", timeout=60)
    assert proc.returncode == 0 and "BOOK" in proc.stdout.upper() and "--split" in proc.stdout
    assert time.monotonic() - started < 10
