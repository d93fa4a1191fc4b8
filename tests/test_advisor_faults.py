"""The advisor client in the real world: a fake OpenAI-compatible server on a real socket.

Every case runs the CLI with optimizer=advisor and the scripted answer model; the run
must finish (or, for 401, stop at once with a clear error), count failures in
run.json, and keep everything scored.
"""

import csv
import json

import pytest

from tests.cli_helpers import run_cli
from scripts.fake_openai_server import FakeOpenAIServer, Step
from tests.task_factory import make_task

# The scripted answer model answers exactly only prompts with this marker; the manual seeds lack it.
MARKER = "EXACT_VALUE_ONLY"
GOOD = Step(reply=f"Analysis.\n<prompt>{{question}} {MARKER}</prompt>\n<prompt>Поле: {{question}}</prompt>")
ONE_PAIR = "pairs=[\"passport Фамилия\"]"


def _run(tmp_path, server, *extra, env=None):
    data = make_task(tmp_path / "data", n_images=8)
    return run_cli(tmp_path, data, ONE_PAIR, "optimizer=advisor", "advisor=fake_openai",
                   f"advisor.api_base={server.url}", "optimizer.n_candidates=2", "optimizer.max_reasks=0",
                   f"model.exact_marker={MARKER}", *extra,
                   timeout=180, env=env)


def _outputs(tmp_path):
    summary = json.loads((tmp_path / "out/run.json").read_text())
    with (tmp_path / "out/Scripted-VLM_sep_Fake.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return summary, rows


def test_timeout_then_success(tmp_path):
    with FakeOpenAIServer([Step(reply="late", delay_s=4.0), GOOD]) as server:
        proc = _run(tmp_path, server)
    assert proc.returncode == 0, proc.stderr
    summary, rows = _outputs(tmp_path)
    assert len(server.requests) == 2 and summary["advisor_usage"]["calls"] == 1
    assert summary["advisor_usage"]["failed_calls"] == 0
    assert rows[0]["optimal prompt"] == f"{{question}} {MARKER}" and rows[0]["author"] == "Fake"


def test_429_waits_as_long_as_retry_after_says(tmp_path):
    with FakeOpenAIServer([Step(status=429, headers={"Retry-After": "1.5"}), GOOD]) as server:
        proc = _run(tmp_path, server)
    assert proc.returncode == 0, proc.stderr
    gap = server.requests[1]["t"] - server.requests[0]["t"]
    assert 1.4 <= gap < 10, gap  # the backoff alone would have been ~0.1-0.2 s
    assert _outputs(tmp_path)[0]["advisor_usage"]["calls"] == 1


def test_500_three_times_gives_up_that_proposal_and_the_run_goes_on(tmp_path):
    with FakeOpenAIServer([Step(status=500)]) as server:
        proc = _run(tmp_path, server)
    assert proc.returncode == 0, proc.stderr
    assert len(server.requests) == 3  # one try + num_retries=2, then given up
    summary, rows = _outputs(tmp_path)
    assert summary["advisor_usage"]["failed_calls"] == 1 and summary["advisor_usage"]["calls"] == 0
    assert rows[0]["status"] == "ok" and rows[0]["cer"] != ""  # the baseline and manual prompts were kept
    assert rows[0]["author"] in ("dataset", "manual")


@pytest.mark.parametrize("reply", ["I think the best prompt is to ask nicely.", ""])
def test_reply_without_a_usable_prompt_is_corrected_once_then_counted(tmp_path, reply):
    with FakeOpenAIServer([Step(reply=reply)]) as server:
        proc = _run(tmp_path, server)
    assert proc.returncode == 0, proc.stderr
    assert len(server.requests) == 2  # the request and one correction
    correction = server.requests[1]["body"]["messages"]
    assert correction[-2]["role"] == "assistant" and "<prompt1>" in correction[-1]["content"]
    summary, rows = _outputs(tmp_path)
    assert summary["advisor_usage"]["unusable_replies"] == 1 and rows[0]["cer"] != ""


def test_401_stops_at_once_naming_the_advisor_and_key_variable(tmp_path, monkeypatch):
    env_name = "FAKE_ADVISOR_KEY"
    with FakeOpenAIServer([Step(status=401)]) as server:
        proc = _run(tmp_path, server, f"advisor.api_key_env={env_name}",
                    env={env_name: "sk-fake-0123456789abcdef"})
    assert proc.returncode == 3, proc.stderr
    assert len(server.requests) == 1  # no retry of what cannot heal
    errors = [line for line in proc.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "advisor 'Fake'" in errors[0] and env_name in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_key_stops_before_any_work(tmp_path):
    with FakeOpenAIServer([GOOD]) as server:
        proc = _run(tmp_path, server, "advisor.api_key_env=NO_SUCH_ADVISOR_KEY")
    assert proc.returncode == 3 and "NO_SUCH_ADVISOR_KEY is not set" in proc.stderr
    assert server.requests == [] and not (tmp_path / "out/trials.jsonl").exists()


def test_a_key_never_reaches_any_file(tmp_path):
    secret = "sk-fake-SECRET-5f0e1c2d3b4a"
    with FakeOpenAIServer([GOOD]) as server:
        proc = _run(tmp_path, server, "advisor.api_key_env=FAKE_ADVISOR_KEY", env={"FAKE_ADVISOR_KEY": secret})
    assert proc.returncode == 0, proc.stderr
    assert server.requests[0]["authorization"] == f"Bearer {secret}"  # it was used...
    leaked = [str(p) for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaked == [] and secret not in proc.stderr + proc.stdout  # ...and written nowhere


def test_manual_with_an_advisor_named_writes_under_none(tmp_path):
    data = make_task(tmp_path / "data", n_images=8)
    proc = run_cli(tmp_path, data, ONE_PAIR, "advisor=gpt4o")  # no OPENAI_API_KEY needed: nothing asks GPT-4o
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out/Scripted-VLM_sep_none.csv").is_file()
    assert not list(tmp_path.rglob("*_sep_GPT4o.csv"))


def test_every_advisor_call_is_logged_with_its_usage(tmp_path):
    with FakeOpenAIServer([Step(status=500), Step(status=500), Step(status=500), GOOD]) as server:
        proc = _run(tmp_path, server, "optimizer.max_reasks=1")
    assert proc.returncode == 0, proc.stderr
    calls = [json.loads(line) for line in (tmp_path / "out/advisor_calls.jsonl").read_text().splitlines()]
    assert [(c["failed"], c["cached"]) for c in calls] == [(True, False), (False, False)]
    assert calls[1]["prompt_tokens"] == 50 and calls[1]["completion_tokens"] == 20 and calls[1]["sample"] == 1


def test_a_panel_of_two_served_advisors_takes_turns_through_the_cli(tmp_path):
    """advisor=panel from the command line: two members on two real sockets, one critic round
    each, every prompt credited to its writer, one results file named after the panel."""
    weak = Step(reply="<prompt>Поле: {question}</prompt>")
    with FakeOpenAIServer([weak]) as first, FakeOpenAIServer([GOOD]) as second:
        data = make_task(tmp_path / "data", n_images=8)
        proc = run_cli(tmp_path, data, ONE_PAIR, "optimizer=critic", "optimizer.rounds=2", "optimizer.per_round=1",
                       "optimizer.max_reasks=0", "optimizer.rule_edits=false", "optimizer.patience=5",
                       "advisor=panel", "advisor@advisor.members.first=fake_openai",
                       "advisor@advisor.members.second=fake_openai", "advisor.members.second.name=Fake2",
                       f"advisor.members.first.api_base={first.url}", f"advisor.members.second.api_base={second.url}",
                       f"model.exact_marker={MARKER}", timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert len(first.requests) == 1 and len(second.requests) == 1  # round 1 the first, round 2 the second
    with (tmp_path / "out/Scripted-VLM_sep_Fake+Fake2.csv").open(encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["author"] == "Fake2" and MARKER in row["optimal prompt"]
    summary = json.loads((tmp_path / "out/run.json").read_text())
    (by_author,) = [digest["by_author"] for digest in summary["pairs"].values()]
    assert by_author["Fake"]["prompt"] == "Поле: {question}" and by_author["Fake"]["test_cer"] is not None
    assert summary["advisor_members"]["Fake"]["calls"] == 1 and summary["advisor_members"]["Fake2"]["calls"] == 1
    calls = [json.loads(line) for line in (tmp_path / "out/advisor_calls.jsonl").read_text().splitlines()]
    assert [c["advisor"] for c in calls] == ["Fake", "Fake2"]
