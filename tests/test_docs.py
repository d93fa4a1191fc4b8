"""The documentation stays true: links resolve, README stays a front door with the two
commands CI runs, the tests the docs cite exist, and docs/extending.md's worked examples
run as printed (each marked block is executed, its YAML instantiated, and the result run
through the engine's public pieces); saved where their first lines say, in a copy of the
checkout, they pass the contract tests every plugin passes, and the documented fast loop runs
the example optimizer there."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from optimize.answer_store import AnswerStore
from optimize.evaluator import Evaluator
from optimizers.advisor import AdvisorOptimizer
from prompt_opt_api import EndpointUnreachable, Prompt, baseline_prompt
from tasks.cer_metric import CerMetric
from tests.cli_helpers import cli_env
from tests.engine_harness import one_pair, run_engine
from tests.task_factory import make_task

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOC_FILES = [README, *sorted((ROOT / "docs").glob("*.md"))]
EXTENDING = ROOT / "docs" / "extending.md"
SETUP_COMMAND = "bash scripts/setup.sh && .venv/bin/python -m optimize"
TEST_COMMAND = ".venv/bin/python -m pytest -q"
REAL_LANE_COMMAND = ".venv/bin/python -m pytest -q -m real"
EXACT = "{question} Ответь только значением."  # the scripted model answers this one exactly

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
EXAMPLE = re.compile(r"<!-- example: ([\w-]+) -->\s*```(\w+)\n(.*?)^```", re.S | re.M)


def _prose(path: Path) -> str:
    """The file without its fenced code blocks (a link or name in code is not prose)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", _prose(path), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def test_every_link_in_the_docs_resolves():
    checked, broken = 0, []
    for doc in DOC_FILES:
        for target in LINK.findall(_prose(doc)):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            path = (doc.parent / path_part).resolve() if path_part else doc
            checked += 1
            if not path.is_file():
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and anchor not in _anchors(path):
                broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert checked > 20 and not broken, broken


def test_readme_is_a_front_door_with_the_two_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150
    first_block = FENCE.search("\n".join(lines)).group(0).splitlines()
    # exactly, each a line of its own
    assert SETUP_COMMAND in first_block and TEST_COMMAND in first_block and REAL_LANE_COMMAND in first_block
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert TEST_COMMAND in ci and REAL_LANE_COMMAND in ci  # CI runs both lanes README gives


def test_the_tests_the_docs_cite_exist():
    defined = {name for path in (ROOT / "tests").glob("test_*.py")
               for name in re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.M)}
    cited = {name for doc in DOC_FILES for name in re.findall(r"`(test_\w+)`", _prose(doc))}
    files = {name for doc in DOC_FILES for name in re.findall(r"`(tests/[\w/]+\.py)`", _prose(doc))}
    assert len(cited) > 30 and not cited - defined, sorted(cited - defined)
    assert not {f for f in files if not (ROOT / f).is_file()}


# -- docs/extending.md's examples ------------------------------------------------------------

def _examples() -> dict[str, tuple[str, str]]:
    """Marked blocks of docs/extending.md: name -> (language, code)."""
    return {name: (lang, code) for name, lang, code in EXAMPLE.findall(EXTENDING.read_text(encoding="utf-8"))}


def test_every_example_in_extending_is_marked_and_run_here():
    examples = _examples()
    assert set(examples) == {"fast-loop", "real-loop", "new-optimizer", "new-optimizer-yaml", "new-answer-model",
                             "new-answer-model-yaml", "new-advisor", "new-advisor-yaml"}
    python_blocks = re.findall(r"^```python$", EXTENDING.read_text(encoding="utf-8"), re.M)
    assert len(python_blocks) == sum(lang == "python" for lang, _ in examples.values())  # none runs untested


def _plugin(name: str, monkeypatch) -> types.ModuleType:
    """Execute example ``name`` as the module its first line names (``# optimizers/x.py``)."""
    lang, code = _examples()[name]
    assert lang == "python"
    module_name = re.match(r"# ([\w/]+)\.py\n", code).group(1).replace("/", ".")
    module = types.ModuleType(module_name)
    module.__file__ = str(EXTENDING)
    monkeypatch.setitem(sys.modules, module_name, module)
    exec(compile(code, f"{EXTENDING}:{name}", "exec"), module.__dict__)
    return module


def _from_yaml(name: str, monkeypatch, manual=("Опиши документ.",), **overrides):
    """Instantiate example ``name``'s YAML as Hydra would, its module executed first."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    _plugin(name, monkeypatch)
    lang, text = _examples()[f"{name}-yaml"]
    assert lang == "yaml"
    cfg = OmegaConf.create({"prompts": {"manual": list(manual)}, "node": OmegaConf.create(text)})
    return instantiate(OmegaConf.merge(cfg, {"node": overrides}).node)


def test_the_example_optimizer_wins_with_the_suffix_that_helps(tmp_path, monkeypatch):
    optimizer = _from_yaml("new-optimizer", monkeypatch)
    assert type(optimizer).__name__ == "SuffixSearchOptimizer" and optimizer.manual_candidates == ("Опиши документ.",)
    pair = one_pair(tmp_path / "plan")
    assert [p.text for p in optimizer.known_prompts(pair)] == ["{question}", "Опиши документ."]

    (row,) = run_engine(tmp_path, optimizer).csv_rows
    # baseline one character short, the manual prompt and " Кратко." wrong: only the second suffix helps
    assert row["optimal prompt"] == EXACT and row["cer"] == "0.0000" and row["status"] == "ok"
    assert int(row["answer_model_evaluations"]) == optimizer.planned_evaluations(pair, None) + len(pair.test)


def test_the_example_answer_model_is_scored_through_the_evaluator(tmp_path, monkeypatch):
    pair = one_pair(tmp_path)
    answers = {hashlib.sha256(e.image.read_bytes()).hexdigest(): e.answer for e in pair.train + pair.val}
    asked = []

    class ReadingService(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            asked.append(body["instruction"])
            sha = hashlib.sha256(base64.b64decode(body["image"])).hexdigest()
            reply = json.dumps({"answer": answers[sha] if "только значением" in body["instruction"] else "не знаю"})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(reply.encode("utf-8"))

        def log_message(self, *args):
            pass

    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), ReadingService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        model = _from_yaml("new-answer-model", monkeypatch, url=f"http://127.0.0.1:{server.server_port}/read")
        store = AnswerStore(tmp_path / "s.sqlite")
        evaluator = Evaluator(model, store, CerMetric(), pair)
        assert evaluator.score(Prompt(EXACT), pair.val).cer == 0.0
        assert evaluator.score(baseline_prompt(), pair.val).cer > 0.5
        assert len(asked) == 2 * len(pair.val) and asked[0].endswith("Ответь только значением.")
        again = Evaluator(model, store, CerMetric(), pair)  # the answers are cached under the model's identity
        assert again.score(Prompt(EXACT), pair.val).cer == 0.0 and again.model_calls == 0
        assert len(asked) == 2 * len(pair.val)
    finally:
        server.shutdown()
        server.server_close()

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    unreachable = type(model)(url=f"http://127.0.0.1:{closed}/read")
    with pytest.raises(EndpointUnreachable, match=str(closed)):
        unreachable.answer([(Prompt(EXACT), pair.val[0])])


def test_the_example_advisor_writes_the_prompt_that_wins(tmp_path, monkeypatch):
    advisor = _from_yaml("new-advisor", monkeypatch)
    assert advisor.name == "Templates"
    (row,) = run_engine(tmp_path, AdvisorOptimizer(n_candidates=2, max_reasks=0), advisor=advisor).csv_rows
    # its second template is the one the scripted model answers exactly; it was scored and won
    assert row["optimal prompt"] == EXACT and row["cer"] == "0.0000"
    assert row["author"] == "Templates" and row["advisor_calls"] == "1"
    assert advisor.usage.calls == 1


def test_a_hand_written_prompt_that_wins_is_credited_to_manual(tmp_path, monkeypatch):
    optimizer = _from_yaml("new-optimizer", monkeypatch, manual=(EXACT,))
    (row,) = run_engine(tmp_path, optimizer).csv_rows
    assert row["optimal prompt"] == EXACT and row["cer"] == "0.0000"
    assert row["author"] == "manual" and row["origin"] == "manual"  # docs/cli.md: hand-written prompts are manual's


# -- the examples saved to disk, and the fast loop -------------------------------------------------

CHECKOUT = ("conf", "models", "optimize", "optimizers", "prompt_opt_api", "scripts", "tasks", "tests", "pyproject.toml")


@pytest.fixture(scope="module")
def saved_checkout(tmp_path_factory) -> Path:
    """A copy of the checkout (demo images left out) with every example of docs/extending.md
    saved where its first line says, as a reader would save it."""
    root = tmp_path_factory.mktemp("checkout")
    ignore = shutil.ignore_patterns("__pycache__", "*.sqlite", "demo", "outputs")
    for name in CHECKOUT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=ignore)
        else:
            shutil.copy2(source, root / name)
    for name, (lang, code) in _examples().items():
        if lang in ("python", "yaml"):
            target = root / re.match(r"# ([\w/.]+)\n", code).group(1)
            target.write_text(code, encoding="utf-8")
    return root


def _in_checkout(root: Path, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = dict(cli_env(), PYTHONPATH=str(root))
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_examples_saved_as_printed_pass_the_contract_tests_of_every_plugin(saved_checkout):
    assert (saved_checkout / "optimizers" / "suffix_search.py").is_file()
    proc = _in_checkout(saved_checkout, [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
                                         "tests/test_configs_and_contracts.py"], timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    for test in ("test_optimizer_configs_instantiate_and_keep_the_signature[suffix_search]",
                 "test_every_optimizer_module_keeps_the_signature",
                 "test_model_configs_instantiate_without_loading_weights[field_service]",
                 "test_advisor_configs_instantiate_without_network_or_secrets[templates]"):
        assert re.search(rf"{re.escape(test)} PASSED", proc.stdout), test


def _documented(name: str) -> list[str]:
    lang, code = _examples()[name]
    assert lang == "bash"
    (line,) = [line for line in code.splitlines() if line.strip()]
    return shlex.split(line)


def test_the_fast_loop_runs_the_example_optimizer_in_seconds(saved_checkout, tmp_path):
    fast, real = _documented("fast-loop"), _documented("real-loop")
    scripted = ["-cd", "tests/conf", "model=scripted", "paths.results_dir=null"]
    assert [a for a in fast if a not in scripted] == real  # the same command, with the real model
    assert fast[0] == ".venv/bin/python" and "optimizer=suffix_search" in fast

    data = make_task(tmp_path / "data", n_images=10)
    small = ["task=csv", f"task.csv={data}", f"paths.store={tmp_path / 'store.sqlite'}"]
    started = time.monotonic()
    proc = _in_checkout(saved_checkout, [sys.executable, *fast[1:], *small, f"hydra.run.dir={tmp_path / 'fast'}"],
                        timeout=120)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    with (tmp_path / "fast" / "Scripted-VLM_sep_none.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(r["optimizer"] == "suffix_search" and r["status"] == "ok" for r in rows)
    # conf/config.yaml's first hand-written prompt holds the scripted model's marker: it wins, credited to manual
    assert all("только значением" in r["optimal prompt"] and r["author"] == "manual" for r in rows)
    assert (tmp_path / "fast" / "report.html").is_file() and not (saved_checkout / "outputs" / "results").exists()
    assert elapsed < 60, elapsed  # seconds, not the minutes a real model takes

    # an optimizer that asks an advisor: the same loop with the example advisor (no LLM, key or cost)
    asking = _in_checkout(saved_checkout, [sys.executable, *fast[1:], *small, "optimizer=advisor", "advisor=templates",
                                           "prompts.manual=[]", f"hydra.run.dir={tmp_path / 'asking'}"], timeout=120)
    assert asking.returncode == 0, asking.stderr[-4000:]
    with (tmp_path / "asking" / "Scripted-VLM_sep_Templates.csv").open(encoding="utf-8") as fh:
        assert {(r["author"], r["cer"]) for r in csv.DictReader(fh)} == {("Templates", "0.0000")}

    plan = _in_checkout(saved_checkout, [sys.executable, *real[1:], *small, "plan=true",
                                         f"hydra.run.dir={tmp_path / 'real'}"], timeout=120)
    assert plan.returncode == 0, plan.stderr[-4000:]
    assert "suffix_search" in plan.stdout and "Scripted-VLM" not in plan.stdout + plan.stderr
