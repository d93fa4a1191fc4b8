"""The advisor stops when it has written the prompts asked for: the request carries the last
prompt's closing tag as a stop string and a reply cap sized to the number of prompts."""

import json

from optimizers.prompt_pool import ask_for_prompts, parse_prompts, reply_limits
from prompt_opt_api import Advisor, AdvisorReply
from tests.cli_helpers import run_cli
from scripts.fake_openai_server import FakeOpenAIServer, Step
from tests.task_factory import make_task

CHATTY = ("Analysis: short prompts work.\n<prompt1>{question} Только значение.</prompt1>\n"
          "<prompt2>Поле: {question}</prompt2>\n<prompt3>unasked {question}</prompt3>\nAnd here is why, at length...")


class _StoppingAdvisor(Advisor):
    """Answers CHATTY, cut at the stop string as a server cuts it; records each request's limits."""

    name = "stopping"

    def __init__(self):
        super().__init__()
        self.limits = []

    def reply(self, messages, *, temperature=None, sample=0, stop=None, max_tokens=None):
        self.limits.append({"stop": stop, "max_tokens": max_tokens})
        text = CHATTY
        for s in stop or []:
            text = text.split(s, 1)[0]
        return AdvisorReply(text=text)


def test_the_reply_is_cut_after_the_last_asked_prompt():
    advisor = _StoppingAdvisor()
    asked = ask_for_prompts(advisor, [{"role": "user", "content": "write 2"}], n=2, sample_base=0, known=set())
    assert advisor.limits == [{"stop": ["</prompt2>"], "max_tokens": 420}] == [reply_limits(2)]
    assert asked.prompts == ["{question} Только значение.", "Поле: {question}"]
    assert reply_limits(1) == {"stop": ["</prompt1>"], "max_tokens": 270}


def test_numbered_plain_and_cut_tags_are_all_read():
    assert parse_prompts("<prompt1>A</prompt1> x <prompt2>B") == ["A", "B"]  # the last one cut by the stop string
    assert parse_prompts("<prompt>A</prompt><prompt>B</prompt>") == ["A", "B"]  # a model that ignores the numbers
    assert parse_prompts("no tags at all") == []


def test_a_served_advisor_gets_the_stop_string_and_the_cap_on_the_wire(tmp_path):
    """Through the CLI, litellm and a real socket: the request names the stop string and the cap."""
    marker = "EXACT_VALUE_ONLY"
    reply = CHATTY.replace("Только значение.", marker)
    with FakeOpenAIServer([Step(reply=reply)]) as server:
        proc = run_cli(tmp_path, make_task(tmp_path / "data", n_images=8), 'pairs=["passport Фамилия"]',
                       "optimizer=advisor", "advisor=fake_openai", f"advisor.api_base={server.url}",
                       "optimizer.n_candidates=2", "optimizer.max_reasks=0", f"model.exact_marker={marker}",
                       timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    body = server.requests[0]["body"]
    # tests/conf/advisor/fake_openai.yaml caps replies at 200 tokens: the smaller cap wins
    assert body["stop"] == ["</prompt2>"] and body["max_tokens"] == 200
    trials = [json.loads(line) for line in (tmp_path / "out/trials.jsonl").read_text().splitlines()]
    written = {t["prompt"] for t in trials if t["origin"].startswith("advisor:")}
    assert written == {f"{{question}} {marker}", "Поле: {question}"}  # the unasked third never arrived
