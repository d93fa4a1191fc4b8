"""The local advisor: a real llama.cpp server reached through litellm, never left behind."""

import os
import pytest
import signal
import subprocess
import sys
import time

from hydra.utils import instantiate

from scripts.default_models import REPO, advisor_config, models_dir

pytestmark = pytest.mark.real  # real weights, Tesseract or a real server: the real lane


def _gone(pid: int, within_s: float = 20.0) -> bool:
    deadline = time.time() + within_s
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie child of ours still answers kill(0); reaped ones do not
        try:
            if open(f"/proc/{pid}/stat").read().split()[2] == "Z":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.2)
    return False


def test_completion_through_litellm_and_server_stopped_after():
    advisor = instantiate(advisor_config(max_tokens=40, temperature=0.0))
    try:
        reply = advisor.complete([{"role": "user", "content": "Напиши одно слово: паспорт"}])
        pid = advisor.server.process.pid
        assert reply.strip() and advisor.usage.calls == 1 and advisor.usage.completion_tokens > 0
        assert advisor.server.healthy()
    finally:
        advisor.close()
    assert _gone(pid)


_CHILD = """
import signal, sys, time
# Ctrl-C must reach this child as it reaches a run in a terminal: a child inherits an ignored
# or blocked SIGINT from pytest (a background shell ignores it; a library's thread may block
# it), and the test then waited for nothing
signal.pthread_sigmask(signal.SIG_UNBLOCK, {{signal.SIGINT}})
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {repo!r})
from hydra.utils import instantiate
from omegaconf import OmegaConf
cfg = OmegaConf.load({repo!r} + "/conf/advisor/local.yaml")
cfg.server.store_dir = {store!r}
cfg.max_tokens = 5
advisor = instantiate(cfg)
try:
    advisor.complete([{{"role": "user", "content": "hi"}}])
    print(advisor.server.process.pid, flush=True)
    time.sleep(600)
finally:
    advisor.close()
"""


def _child_with_server():
    code = _CHILD.format(repo=str(REPO), store=str(models_dir()))
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:  # libraries may print their own lines first
        if line.strip().isdigit():
            return proc, int(line)
    raise AssertionError(f"child did not start the server (exit code {proc.wait()})")


def test_server_is_stopped_when_the_run_is_interrupted():
    proc, server_pid = _child_with_server()
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    proc.wait(timeout=30)
    assert _gone(server_pid)


def test_server_dies_with_a_killed_parent():
    proc, server_pid = _child_with_server()
    proc.kill()  # SIGKILL: no Python cleanup runs; the kernel's parent-death signal must do it
    proc.wait(timeout=30)
    assert _gone(server_pid)
