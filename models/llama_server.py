"""The local advisor's server: llama-cpp-python's OpenAI-compatible server on 127.0.0.1.

Started on first use, health-checked before use, stopped when the run ends: on
``stop()``, at interpreter exit, and, should the parent die without cleaning up
(SIGKILL), by the kernel (``PR_SET_PDEATHSIG``): no orphan server is left behind.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from models.model_store import ModelSpec, ModelStore

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class LlamaServer:
    """``python -m llama_cpp.server`` for one GGUF model.

    Args:
        weights: Pinned GGUF file (fetched and verified through the model store).
        store_dir: Model store folder.
        model_alias: Name the server answers to (litellm calls ``openai/<alias>``).
        host: Bind address (loopback only by default).
        port: Port, or None for a free one.
        n_ctx: Context window.
        n_threads: CPU threads (None: all available cores).
        startup_timeout_s: Seconds to wait for the health check.
    """

    def __init__(
        self,
        weights: ModelSpec,
        store_dir: str = "~/.cache/vlm-prompt-opt/models",
        model_alias: str = "local-advisor",
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        startup_timeout_s: float = 180.0,
    ) -> None:
        self.weights = weights
        self.store_dir = store_dir
        self.model_alias = model_alias
        self.host = host
        self.port = port
        self.n_ctx = n_ctx
        self.n_threads = n_threads or len(os.sched_getaffinity(0))
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen | None = None
        self._log_file: Path | None = None
        self._lock = threading.RLock()
        self._owner_done: threading.Event | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as resp:
                return resp.status == 200 and "data" in json.loads(resp.read())
        except (OSError, ValueError):
            return False

    def start(self) -> str:
        """Start the server if it is not running; return its base URL once healthy.

        Thread-safe. The child is spawned from a thread owned by this object that lives
        until ``stop()``: Linux delivers the parent-death signal when the *thread* that
        forked the child exits, so a pool thread that happened to ask first must not be
        the child's parent.
        """
        with self._lock:
            return self._start()

    def _spawn(self, cmd: list[str], fd: int) -> subprocess.Popen:
        spawned: dict[str, object] = {}
        ready, done = threading.Event(), threading.Event()

        def own() -> None:
            try:
                spawned["proc"] = subprocess.Popen(cmd, stdout=fd, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                   preexec_fn=_die_with_parent)
            except BaseException as err:  # noqa: BLE001 - handed to the caller
                spawned["error"] = err
            ready.set()
            done.wait()  # stay alive: this thread's exit would signal the child

        threading.Thread(target=own, name="llama-server-owner", daemon=True).start()
        ready.wait()
        if "error" in spawned:
            raise spawned["error"]  # type: ignore[misc]
        self._owner_done = done
        return spawned["proc"]  # type: ignore[return-value]

    def _start(self) -> str:
        if self.process is not None and self.process.poll() is None:
            return self.base_url
        model_path = ModelStore(self.store_dir).fetch(self.weights)
        self.port = self.port or free_port(self.host)
        fd, log_name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
        self._log_file = Path(log_name)
        cmd = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--model_alias", self.model_alias,
            "--host", self.host, "--port", str(self.port), "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads), "--verbose", "False",
        ]
        log.info("starting local advisor server on %s", self.base_url)
        try:
            self.process = self._spawn(cmd, fd)
        finally:
            os.close(fd)
        atexit.register(self.stop)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if (code := self.process.poll()) is not None:
                tail = self._log_file.read_text(errors="replace")[-1500:]
                self.stop()  # clears self.process: the code and log tail are kept above
                raise RuntimeError(f"local advisor server exited with code {code}:\n{tail}")
            if self.healthy():
                return self.base_url
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"local advisor server did not answer on {self.base_url} within {self.startup_timeout_s:.0f} s")

    def stop(self) -> None:
        """Terminate the server (then kill it after 10 s); idempotent."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._owner_done is not None:
            self._owner_done.set()
            self._owner_done = None
        if self._log_file is not None:
            self._log_file.unlink(missing_ok=True)
            self._log_file = None
