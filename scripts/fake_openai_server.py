"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests and benchmarks.

One server for both ends of the wire: advisor tests script each reply or fault (a text,
an HTTP status with headers, a stall past the client's timeout); answer-model tests and
``scripts/bench_qwen2_vl.py openai-stub`` let a rule answer and, with
``require_images``, refuse a request whose user turns do not each carry one base64
image and one text. Every request is recorded with its arrival time and Authorization
header; ``max_in_flight`` shows how many were served at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Step:
    """One scripted response: ``reply`` text, or an HTTP ``status`` with ``headers``, after ``delay_s``.

    ``reply=None`` with status 200: the server's ``answer`` rule writes the reply.
    """

    reply: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def image_problem(body: dict) -> tuple[str, str, int]:
    """(problem, text of the last user turn, images seen): each user turn must be one base64 image and one text."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    if not users:
        return "no user message", "", 0
    for message in users:
        content = message.get("content")
        if not isinstance(content, list):
            return "user content is not a list of parts", "", 0
        urls = [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
        if len(urls) != 1 or len([p for p in content if p.get("type") == "text"]) != 1:
            return "each user turn needs one image and one text", "", 0
        if not urls[0].startswith("data:image/") or ";base64," not in urls[0]:
            return "image is not a base64 data URL", "", 0
        try:
            base64.b64decode(urls[0].split(",", 1)[1], validate=True)
        except binascii.Error:
            return "image is not valid base64", "", 0
    last = next(p["text"] for p in users[-1]["content"] if p.get("type") == "text")
    return "", last, len(users)


class FakeOpenAIServer:
    """Serve ``/v1/chat/completions`` in a background thread.

    Args:
        script: Responses in order; when it runs out the last step repeats (empty: every
            request is answered by ``answer``).
        answer: ``answer(text_of_last_user_turn, n_images) -> str`` for steps without a reply.
        latency_s: Extra sleep before every response.
        require_images: Refuse (400, recorded in ``errors``) a request whose user turns are
            not each one base64 image and one text, as a VLM endpoint reads them.
    """

    def __init__(self, script: list[Step] = (), answer: Callable[[str, int], str] | None = None,
                 latency_s: float = 0.0, require_images: bool = False) -> None:
        self.script = list(script) or [Step()]
        self.answer = answer or (lambda text, n_images: f"seen {n_images} image(s)")
        self.latency_s = latency_s
        self.require_images = require_images
        self.requests: list[dict] = []  # {"t": arrival (monotonic), "body": JSON body, "authorization": header}
        self.errors: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802 - http.server naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, payload, headers = server._respond(body, self.headers.get("Authorization", ""))
                data = json.dumps(payload).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def bodies(self) -> list[dict]:
        """The JSON body of every request, in arrival order."""
        return [r["body"] for r in self.requests]

    def _respond(self, body: dict, authorization: str) -> tuple[int, dict, dict[str, str]]:
        """(status, payload, headers) for one request, after its step's delay."""
        problem, text, n_images = image_problem(body) if self.require_images else ("", "", 0)
        with self._lock:
            index = len(self.requests)
            self.requests.append({"t": time.monotonic(), "body": body, "authorization": authorization})
            step = self.script[min(index, len(self.script) - 1)]
            if problem:
                self.errors.append(problem)
                return 400, {"error": {"message": problem}}, {}
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(step.delay_s + self.latency_s)
        with self._lock:
            self.in_flight -= 1
        if step.status != 200:
            return step.status, {"error": {"message": f"scripted {step.status}", "type": "test"}}, step.headers
        reply = step.reply if step.reply is not None else self.answer(text, n_images)
        for stop in body.get("stop") or []:  # as a real server: the reply ends before a stop string
            reply = reply.split(stop, 1)[0]
        return 200, {
            "id": f"fake-{index}", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
        }, step.headers

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
