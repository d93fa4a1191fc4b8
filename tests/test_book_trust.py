"""A prompt book from someone else is data: books that try to be code, each refused with one line
(exit 2, before any model is built), and the honest book beside each, applied as before.

Every attack book is forged the way its author could: settings edited, then the task id and
the content hash recomputed (the hash shows a book is as written; it is not a signature).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from optimize.task_identity import task_id, task_sha256
from prompt_opt_api import cache_key
from scripts.fake_openai_server import FakeOpenAIServer
from tasks.docqa_csv import load_task
from tasks.pair_splits import PairSplitter
from tests.cli_helpers import REPO, cli_env, run_cli
from tests.task_factory import make_task

SECRET = "sk-victim-secret-0042"


def _apply(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "optimize.apply", *map(str, args)], cwd=REPO,
                          env={**cli_env(), VICTIM_KEY_VAR: SECRET, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


VICTIM_KEY_VAR = "VICTIM_API_KEY"
SCRIPTED = ("--allow", "tests.")  # the scripted test model lives in tests/


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """A scripted few-shot run's book (winners carry two train demos) and its task CSV."""
    root = tmp_path_factory.mktemp("honest")
    data = make_task(root / "data", n_images=10)
    proc = run_cli(root, data, "optimizer=fewshot", "optimizer.manual_candidates=[]", "model.demos_exact=true",
                   "optimizer.random_sets=3", "optimizer.swap_candidates=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return data, root / "out" / "Scripted-VLM_sep_none.book.json"


def _forge(book_path, out, edit):
    """The book edited by its author, task id and content hash recomputed as anyone can."""
    data = json.loads(book_path.read_text(encoding="utf-8"))
    edit(data)
    examples = load_task(data["task_csv"]).examples
    data["task_id"] = task_id(task_sha256(examples), data["split"], data["metric"])
    if "content_sha256" in data:
        data["content_sha256"] = cache_key({k: v for k, v in data.items() if k != "content_sha256"})
    out.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return out


def _one_line_refusal(proc, *parts):
    """Exit 2 and one error line naming what it refuses, no traceback, no predictions."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "predictions:" not in proc.stdout, proc.stderr[-2000:]
    assert any(all(p in line for p in parts) for line in proc.stderr.splitlines()), proc.stderr[-2000:]


def _openai_model(**extra):
    config = {"_target_": "models.openai_vlm.OpenAIVLMAnswerModel", "name": "Qwen2-VL-2B", "model": "openai/stub-vlm",
              "max_tokens": 32, **extra}
    return lambda d: d.update(answer_model={"name": "Qwen2-VL-2B", "identity": {}, "config": config})


def test_a_book_naming_its_endpoint_and_key_variable_sends_nothing_there(honest, tmp_path):
    data, book = honest
    with FakeOpenAIServer() as attacker, FakeOpenAIServer() as mine:
        forged = _forge(book, tmp_path / "endpoint.book.json",
                        _openai_model(api_base=attacker.url, api_key_env=VICTIM_KEY_VAR))
        proc = _apply(forged, data)
        _one_line_refusal(proc, str(forged),
                          "answer_model.config.api_base, answer_model.config.api_key_env are set by the book")
        assert attacker.requests == [] and SECRET not in proc.stderr + proc.stdout

        # the same model without a location: it runs where the user says, with the user's key
        honest_book = _forge(book, tmp_path / "mine.book.json", _openai_model())
        proc = _apply(honest_book, data, "--model", f"api_base={mine.url}", "--model", "api_key_env=MY_KEY",
                      env={"MY_KEY": "sk-mine"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert len(mine.requests) == len(load_task(data).examples) and attacker.requests == []
        assert {r["authorization"] for r in mine.requests} == {"Bearer sk-mine"}


@pytest.mark.parametrize("clip_at", [0, -1, 1e-9])
def test_a_book_whose_metric_clip_at_is_not_sane_is_refused(honest, tmp_path, clip_at):
    data, book = honest

    def wrong_answers(d, clip):
        d["metric"]["clip_at"] = clip
        for entry in d["pairs"]:  # every answer the scripted model gives is wrong
            entry.update(template="Ответь. {question}", demos=[])

    forged = _forge(book, tmp_path / "clip.book.json", lambda d: wrong_answers(d, clip_at))
    proc = _apply(forged, data, "--split", "test", *SCRIPTED)
    _one_line_refusal(proc, str(forged), f"metric.clip_at={clip_at!r} is not a sane cap")

    sane = _forge(book, tmp_path / "sane.book.json", lambda d: wrong_answers(d, 1.0))
    out = tmp_path / "sane.csv"
    proc = _apply(sane, data, "--split", "test", "--out", out, *SCRIPTED)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert all(p["cer"] > 0.5 for p in figures["pairs"])  # wrong answers score as wrong


def test_a_book_with_another_split_seed_is_refused_on_the_test_split(honest, tmp_path):
    data, book = honest
    examples = load_task(data).examples

    def test_pages(seed):
        return {(p.key, e.image_sha256) for p in PairSplitter(seed=seed, near_duplicate_cosine=0.99).split(examples, [])[0] for e in p.test}

    train0 = {(p.key, e.image_sha256) for p in PairSplitter(seed=0, near_duplicate_cosine=0.99).split(examples, [])[0] for e in p.train}
    seed = next(s for s in range(1, 50) if test_pages(s) & train0)  # its "test split" holds train pages of the run
    forged = _forge(book, tmp_path / "seed.book.json", lambda d: d["split"].update(seed=seed))
    proc = _apply(forged, data, "--split", "test", *SCRIPTED)
    _one_line_refusal(proc, str(forged), f"split.seed is {seed} where your split has 0")


def test_a_run_made_with_another_seed_is_checked_with_the_seed_its_user_names(tmp_path):
    data = make_task(tmp_path / "data", n_images=6)
    proc = run_cli(tmp_path, data, "optimizer=fewshot", "optimizer.manual_candidates=[]", "model.demos_exact=true",
                   "optimizer.random_sets=2", "optimizer.swap_candidates=0", "split.seed=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    book = tmp_path / "out" / "Scripted-VLM_sep_none.book.json"
    _one_line_refusal(_apply(book, data, "--split", "test", *SCRIPTED), "split.seed is 3 where your split has 0")
    out = tmp_path / "applied.csv"
    proc = _apply(book, data, "--split", "test", "--split-setting", "seed=3", "--out", out, *SCRIPTED)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    booked = {e["doc_class"] + " " + e["question_type"]: e["test_cer"]
              for e in json.loads(book.read_text(encoding="utf-8"))["pairs"]}
    assert {p["pair"]: p["cer"] for p in figures["pairs"]} == booked


def _ocr_llm(weights, **extra):
    config = {"_target_": "models.ocr_llm.OcrLlmAnswerModel", "name": "Qwen2.5-0.5B-OCR",
              "weights": {"_target_": "models.model_store.ModelSpec", "_convert_": "all", **weights}, **extra}
    return lambda d: d.update(answer_model={"name": "Qwen2.5-0.5B-OCR", "identity": {}, "config": config})


def _conf_weights():
    from omegaconf import OmegaConf

    spec = OmegaConf.to_container(OmegaConf.load(REPO / "conf/model/ocr_llm.yaml").weights)
    return {k: spec[k] for k in ("name", "size", "sha256")}


@pytest.mark.parametrize("attack", ["store_dir", "local_path", "name"])
def test_a_book_naming_weights_locations_writes_and_removes_nothing(honest, tmp_path, attack):
    data, book = honest
    home = tmp_path / "home"  # the user's model store lives here for this test
    store = home / ".cache" / "vlm-prompt-opt" / "models"
    store.mkdir(parents=True)
    (store / "advisor.gguf").write_bytes(b"the user's verified weights")
    payload = tmp_path / "payload.py"
    payload.write_text("print('code of the book's choosing')\n")
    pinned = {"size": payload.stat().st_size, "sha256": hashlib.sha256(payload.read_bytes()).hexdigest()}
    evil = tmp_path / "site-packages"
    weights, where = {
        "store_dir": ({"name": "sitecustomize.py", **pinned, "local_path": str(payload)}, {"store_dir": str(evil)}),
        "local_path": ({"name": "sitecustomize.py", **pinned, "local_path": str(payload)}, {}),
        "name": ({**_conf_weights(), "name": "advisor.gguf"}, {}),  # another file of the user's store
    }[attack]
    forged = _forge(book, tmp_path / "weights.book.json", _ocr_llm(weights, **where))
    proc = _apply(forged, data, env={"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}, timeout=600)
    expected = {"store_dir": ("answer_model.config.weights.local_path, answer_model.config.store_dir are set by "
                              "the book",),
                "local_path": ("answer_model.config.weights.local_path is set by the book",),
                "name": ("answer_model.config.weights.name is 'advisor.gguf' where your config has",)}[attack]
    _one_line_refusal(proc, str(forged), *expected)
    assert not evil.exists() and sorted(p.name for p in store.iterdir()) == ["advisor.gguf"]
    assert (store / "advisor.gguf").read_bytes() == b"the user's verified weights"


def test_an_ocr_llm_book_gets_its_weights_and_store_from_the_users_config(honest, tmp_path):
    from models.prompt_runtime import PromptRuntime

    data, book = honest
    # a run's book names the OCR languages it resolved (the config's default is auto)
    honest_book = _forge(book, tmp_path / "ocr.book.json", _ocr_llm(_conf_weights(), n_ctx=2048, tesseract_lang="eng"))
    runtime = PromptRuntime(honest_book, model_settings={"store_dir": str(tmp_path / "my-store")})
    model = runtime.model("passport", "Фамилия")  # built, not loaded
    assert model.store_dir == str(tmp_path / "my-store") and model.n_ctx == 2048 and model.ocr.lang == "eng"
    assert model.weights.hf_repo == "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF" and model.weights.local_path is None
    assert not (tmp_path / "my-store").exists()


@pytest.mark.parametrize("role, config, allow", [
    ("answer_model", {"_target_": "models.tiny_qwen2_vl.build_tiny_qwen2_vl", "out_dir": "{pwned}"}, ()),
    ("answer_model", {"_target_": "models.model_store.ModelStore", "root": "{pwned}"}, ("--allow", "models.")),
    ("metric", {"_target_": "tasks.docqa_csv.load_task", "csv": "{pwned}"}, ()),
    ("split", {"_target_": "tasks.pair_splits.split_pairs", "examples": []}, ()),
])
def test_a_book_naming_a_function_of_ours_gets_it_not_called(honest, tmp_path, role, config, allow):
    data, book = honest
    pwned = tmp_path / "pwned"
    config = {k: v.format(pwned=pwned) if isinstance(v, str) else v for k, v in config.items()}
    place = {"answer_model": lambda d: d.update(answer_model={"name": "x", "identity": {}, "config": config}),
             "metric": lambda d: d.update(metric=config), "split": lambda d: d.update(split=config)}[role]
    forged = _forge(book, tmp_path / "call.book.json", place)
    proc = _apply(forged, data, "--split", "test", *allow, *SCRIPTED)
    kind = {"answer_model": "an answer model", "metric": "a metric", "split": "a split"}[role]
    expected = f"is not {kind} class" if allow else f"is not {kind} your config registers"
    _one_line_refusal(proc, str(forged), repr(config["_target_"]), expected)
    assert not pwned.exists()


def test_demo_images_are_read_inside_the_demo_folder_only_and_no_hash_is_printed(honest, tmp_path):
    data, book = honest
    secret = data.parent.parent / "secret.txt"  # beside the data folder, not in it
    secret.write_text("the user's private notes\n")
    secret_sha = hashlib.sha256(secret.read_bytes()).hexdigest()
    own = data.parent / "images" / "0.png"
    own_sha = hashlib.sha256(own.read_bytes()).hexdigest()

    def demo(image, sha):
        return lambda d: d["pairs"][0]["demos"][0].update(image=image, image_sha256=sha)

    for image, sha in (("../secret.txt", secret_sha), ("../secret.txt", "0" * 64), (str(secret), secret_sha)):
        forged = _forge(book, tmp_path / "demo.book.json", demo(image, sha))
        proc = _apply(forged, data, *SCRIPTED)
        _one_line_refusal(proc, str(forged), f"({image}): the image path leads outside the demo folder")
        assert secret_sha[:8] not in proc.stderr + proc.stdout
    forged = _forge(book, tmp_path / "demo.book.json", demo("images/0.png", "0" * 64))  # inside, other bytes
    proc = _apply(forged, data, *SCRIPTED)
    _one_line_refusal(proc, "(images/0.png): the image at", "its sha256 is not the one the book records")
    assert own_sha[:8] not in proc.stderr + proc.stdout

    proc = _apply(book, data, *SCRIPTED)  # the honest book's demos lie in the data folder
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_book_demonstrating_with_pages_of_the_split_it_scores_is_refused_on_the_test_split(honest, tmp_path):
    data, book = honest
    examples = load_task(data).examples
    pair = next(p for p in PairSplitter(near_duplicate_cosine=0.99).split(examples, [])[0] if p.key == "passport Фамилия")

    def test_pages_as_demos(d):
        entry = next(e for e in d["pairs"] if e["question_type"] == "Фамилия")
        entry["demos"] = [{"image": f"images/{e.image.name}", "image_sha256": e.image_sha256, "question": e.question,
                           "answer": e.answer} for e in pair.test]

    forged = _forge(book, tmp_path / "leak.book.json", test_pages_as_demos)
    proc = _apply(forged, data, "--split", "test", *SCRIPTED)
    _one_line_refusal(proc, str(forged), "'passport Фамилия'",
                      f"{len(pair.test)} of the {len(pair.test)} test pages", "are its own demo pages: refused")
    proc = _apply(forged, data, *SCRIPTED)  # other documents (every row): scored, with a warning line
    assert proc.returncode == 0 and "are the demos' own pages" in proc.stderr, proc.stderr[-2000:]
    proc = _apply(book, data, "--split", "test", *SCRIPTED)  # train demos: the test split is held out
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_book_not_as_written_is_refused_unless_its_user_trusts_it(honest, tmp_path):
    data, book = honest
    written = json.loads(book.read_text(encoding="utf-8"))
    assert written["schema_version"] == 4 and written["content_sha256"] == cache_key(
        {k: v for k, v in written.items() if k != "content_sha256"})
    edited = tmp_path / "edited.book.json"
    written["pairs"][0]["template"] = "Ответь. {question}"  # hash not recomputed
    edited.write_text(json.dumps(written, ensure_ascii=False), encoding="utf-8")
    _one_line_refusal(_apply(edited, data, *SCRIPTED), str(edited), "content_sha256 does not match")
    proc = _apply(edited, data, "--trust", *SCRIPTED)
    assert proc.returncode == 0 and "content_sha256 does not match" in proc.stderr, proc.stderr[-2000:]

    old = tmp_path / "old.book.json"  # as an earlier version wrote it: no hash
    earlier = json.loads(book.read_text(encoding="utf-8"))
    earlier.update(schema_version=3)
    del earlier["content_sha256"]
    old.write_text(json.dumps(earlier, ensure_ascii=False), encoding="utf-8")
    _one_line_refusal(_apply(old, data, "--split", "test", *SCRIPTED), str(old),
                      "schema_version 3 carries no content_sha256")
    out = tmp_path / "old.csv"
    proc = _apply(old, data, "--split", "test", "--trust", "--out", out, *SCRIPTED)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert {p["pair"]: p["cer"] for p in figures["pairs"]} == {
        e["doc_class"] + " " + e["question_type"]: e["test_cer"] for e in earlier["pairs"]}


def test_an_earlier_books_locations_are_ignored_when_it_is_trusted(honest, tmp_path):
    data, book = honest
    with FakeOpenAIServer() as attacker, FakeOpenAIServer() as mine:
        earlier = json.loads(book.read_text(encoding="utf-8"))
        _openai_model(api_base=attacker.url, api_key_env=VICTIM_KEY_VAR)(earlier)
        earlier.update(schema_version=3)
        del earlier["content_sha256"]
        old = tmp_path / "old.book.json"
        old.write_text(json.dumps(earlier, ensure_ascii=False), encoding="utf-8")
        proc = _apply(old, data, "--trust", "--model", f"api_base={mine.url}")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "answer_model.config.api_base, answer_model.config.api_key_env ignored" in proc.stderr
        assert attacker.requests == [] and mine.requests
        assert {r["authorization"] for r in mine.requests} == {"Bearer not-needed"}
