"""A scripted OpenAI-compatible chat server on 127.0.0.1 for advisor fault tests.

Each request takes the next step of a script: reply with a text, fail with a status
(and headers), or stall past the client's timeout. When the script runs out the last
step repeats. Every request is recorded with its arrival time and Authorization header.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Step:
    """One scripted response: ``reply`` text, or an HTTP ``status`` with ``headers``, after ``delay_s``."""

    reply: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class FakeOpenAIServer:
    """Serve ``/v1/chat/completions`` from a script, in a background thread."""

    def __init__(self, script: list[Step]) -> None:
        self.script = list(script)
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - http.server naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    index = len(server.requests)
                    server.requests.append({"t": time.monotonic(), "body": body,
                                            "authorization": self.headers.get("Authorization", "")})
                    step = server.script[min(index, len(server.script) - 1)]
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                time.sleep(step.delay_s)
                with server._lock:
                    server.in_flight -= 1
                if step.status != 200:
                    payload = json.dumps({"error": {"message": f"scripted {step.status}", "type": "test"}}).encode()
                    self.send_response(step.status)
                    for key, value in step.headers.items():
                        self.send_header(key, value)
                else:
                    reply = step.reply
                    for stop in body.get("stop") or []:  # as a real server: the reply ends before a stop string
                        reply = reply.split(stop, 1)[0] if reply is not None else None
                    payload = json.dumps({
                        "id": f"fake-{index}", "object": "chat.completion", "created": 0, "model": body.get("model"),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": reply}}],
                        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
                    }).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
