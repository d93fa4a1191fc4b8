"""model=openai_vlm against a real local HTTP server."""

import base64

import pytest

from models.openai_vlm import OpenAIVLMAnswerModel
from prompt_opt_api import Prompt
from tasks.docqa_csv import load_task
from scripts.fake_openai_server import FakeOpenAIServer
from tests.task_factory import make_task


@pytest.fixture
def examples(tmp_path):
    return load_task(make_task(tmp_path, n_images=4, with_second_pair=False)).examples


def test_request_carries_image_as_data_url_and_prompt_text(examples):
    with FakeOpenAIServer(answer=lambda text, n: f"{text[:12]}|{n}", require_images=True) as server:
        model = OpenAIVLMAnswerModel(model="openai/stub-vlm", api_base=server.url, concurrency=4)
        prompt = Prompt("{question} Ответь только значением.")
        out = model.answer([(prompt, ex) for ex in examples])
    assert not server.errors
    assert out == [f"{prompt.render(ex)[:12]}|1" for ex in examples]
    body = server.bodies[0]
    assert body["model"] == "stub-vlm" and body["temperature"] == 0.0 and body["max_tokens"] == 32
    parts = body["messages"][-1]["content"]
    url = parts[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    sent = {base64.b64decode(r["messages"][-1]["content"][0]["image_url"]["url"].split(",", 1)[1]) for r in server.bodies}
    assert sent == {ex.image.read_bytes() for ex in examples}
    assert parts[1]["text"] in {prompt.render(ex) for ex in examples}


def test_demos_are_earlier_turns_with_their_own_images(examples):
    with FakeOpenAIServer(require_images=True) as server:
        model = OpenAIVLMAnswerModel(model="openai/stub-vlm", api_base=server.url)
        out = model.answer([(Prompt("{question}", demos=tuple(examples[:2])), examples[3])])
    assert out == ["seen 3 image(s)"] and not server.errors
    roles = [m["role"] for m in server.bodies[0]["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert server.bodies[0]["messages"][1]["content"][0]["text"] == examples[0].answer


def test_concurrency_overlaps_requests(examples):
    batch = [(Prompt("{question}"), examples[i % 4]) for i in range(8)]
    with FakeOpenAIServer(latency_s=0.2, require_images=True) as server:
        OpenAIVLMAnswerModel(model="openai/stub-vlm", api_base=server.url, concurrency=1).answer(batch)
        serial_peak, server.max_in_flight = server.max_in_flight, 0
        out = OpenAIVLMAnswerModel(model="openai/stub-vlm", api_base=server.url, concurrency=8).answer(batch)
    assert serial_peak == 1 and server.max_in_flight >= 4
    assert len(out) == 8 and not server.errors


def test_dead_endpoint_is_a_clear_error(examples):
    model = OpenAIVLMAnswerModel(model="openai/stub-vlm", api_base="http://127.0.0.1:9/v1", num_retries=0, timeout_s=5)
    with pytest.raises(RuntimeError, match="127.0.0.1:9"):
        model.answer([(Prompt("{question}"), examples[0])])
