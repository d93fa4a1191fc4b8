"""A local OpenAI-compatible chat server for tests and benchmarks (127.0.0.1 only).

It checks that every request carries each image as a base64 data URL next to its text,
records what it saw, answers with a fixed rule and can add a fixed latency.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubVLMServer:
    """Serve ``/v1/chat/completions`` in a background thread.

    Args:
        latency_s: Sleep before each reply.
        answer: ``answer(text_of_last_user_turn, n_images) -> str``.
    """

    def __init__(self, latency_s: float = 0.0, answer=None) -> None:
        self.latency_s = latency_s
        self.answer = answer or (lambda text, n_images: f"seen {n_images} image(s)")
        self.requests: list[dict] = []
        self.errors: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802 - http.server naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                problem, text, n_images = stub._check(body)
                with stub._lock:
                    stub.requests.append(body)
                    if problem:
                        stub.errors.append(problem)
                if problem:
                    self._reply(400, {"error": {"message": problem}})
                    return
                with stub._lock:
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                time.sleep(stub.latency_s)
                with stub._lock:
                    stub.in_flight -= 1
                self._reply(200, {
                    "id": "stub", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": stub.answer(text, n_images)}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
                })

            def _reply(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @staticmethod
    def _check(body: dict) -> tuple[str, str, int]:
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        if not users:
            return "no user message", "", 0
        n_images = 0
        for message in users:
            content = message.get("content")
            if not isinstance(content, list):
                return "user content is not a list of parts", "", 0
            urls = [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
            texts = [p["text"] for p in content if p.get("type") == "text"]
            if len(urls) != 1 or len(texts) != 1:
                return "each user turn needs one image and one text", "", 0
            if not urls[0].startswith("data:image/") or ";base64," not in urls[0]:
                return "image is not a base64 data URL", "", 0
            base64.b64decode(urls[0].split(",", 1)[1], validate=True)
            n_images += 1
        return "", users[-1]["content"][1]["text"] if users[-1]["content"][1].get("type") == "text" else "", n_images

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> StubVLMServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
