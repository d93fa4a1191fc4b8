"""The command line's tools around a run: the run plan, sweeps on several launchers, --help
and the progress line."""

import csv
import dataclasses
import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optimize.answer_store import AnswerStore
from optimize.plan import make_plan
from optimizers.advisor import AdvisorOptimizer
from optimizers.chain import ChainOptimizer
from optimizers.critic import CriticOptimizer
from optimizers.fewshot import FewShotOptimizer
from optimizers.manual import ManualOptimizer
from prompt_opt_api import Advisor, AdvisorReply
from tests.cli_helpers import REPO, cli_args, cli_env, run_cli
from tests.engine_harness import run_engine
from tests.scripted_answer_model import ScriptedAnswerModel
from tests.task_factory import make_task


class _Writer(Advisor):
    """Writes one new prompt per call, for a price."""

    name = "Writer"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def reply(self, messages, *, temperature=None, sample=0, stop=None, max_tokens=None):
        self.calls += 1
        return AdvisorReply(text=f"<prompt>Поле {self.calls} {{question}}</prompt>", prompt_tokens=100,
                            completion_tokens=20, cost_usd=0.002)

    def estimated_cost_usd(self, prompt_tokens, completion_tokens):
        return prompt_tokens * 1e-5 + completion_tokens * 1e-4


# -- the run plan --------------------------------------------------------------------
def test_plan_prints_its_figures_and_calls_no_model(tmp_path):
    data = make_task(tmp_path / "data", n_images=8)  # two pairs of 3 train / 2 val / 3 test
    calls = tmp_path / "calls.log"
    # a model that would fail every request of one pair, and logs every request it gets
    plan = run_cli(tmp_path, data, "plan=true", f"model.calls_log={calls}", 'model.fail_pair="passport Фамилия"')
    assert plan.returncode == 0, plan.stderr
    assert not calls.exists() and not (tmp_path / "store.sqlite").exists()  # no model call, nothing written
    out = plan.stdout
    assert out.startswith("Run plan (no model called)")
    assert "passport Фамилия" in out and "passport Номер" in out
    assert "8 + 3" in out  # manual: the baseline and 3 hand-written prompts on 2 val examples, then the test split
    assert "22 evaluations planned" in out and "0 of the 16 planned answers" in out
    assert "none (this optimizer writes no prompts)" in out and "no measurement yet" in out

    run = run_cli(tmp_path, data)
    assert run.returncode == 0, run.stderr
    again = run_cli(tmp_path, data, "plan=true", f"model.calls_log={calls}", out="out2")
    assert again.returncode == 0, again.stderr
    assert "16 of the 16 planned answers" in again.stdout and "about " in again.stdout  # measured speed now
    with (tmp_path / "out" / "Scripted-VLM_sep_none.csv").open(encoding="utf-8") as fh:
        spent = [row["answer_model_evaluations"] for row in csv.DictReader(fh)]
    assert spent == ["11", "11"]  # the run spent what was planned: 8 + 3 evaluations a pair
    assert not calls.exists()


def test_plan_on_the_demo_set_is_fast_and_loads_no_model(tmp_path):
    """The default job's plan (OCR + LLM model, local advisor): under 5 s, no inference library imported."""
    code = ("import sys, runpy, time\n"
            f"sys.argv = ['optimize', 'plan=true', 'paths.store={tmp_path / 'store.sqlite'}', "
            f"'hydra.run.dir={tmp_path / 'out'}']\n"
            "try:\n    runpy.run_module('optimize', run_name='__main__')\nexcept SystemExit as e:\n    code = e.code\n"
            "print('LOADED', [m for m in ('llama_cpp', 'torch', 'transformers', 'litellm') if m in sys.modules])\n")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=REPO, env=cli_env(), capture_output=True,
                          text=True,
                          timeout=60)
    elapsed = time.monotonic() - started
    assert "LOADED []" in proc.stdout, proc.stdout + proc.stderr
    assert "6 to run" in proc.stdout and "Local-Qwen2.5-1.5B, up to 1 call, $0 (local)" in proc.stdout
    # a fresh store: the selection's time from the models' assumed speeds, said to be assumed
    assert "s a query assumed: nothing measured yet" in proc.stdout and "s an advisor call assumed" in proc.stdout
    assert "selection, 6 of its 30" in proc.stderr and "task.pairs=[]" in proc.stderr
    assert elapsed < 5.0, f"plan took {elapsed:.1f} s"


def test_plan_prices_a_cloud_advisor_and_names_a_missing_key(tmp_path):
    env = {k: v for k, v in cli_env().items() if k != "OPENAI_API_KEY"}
    proc = subprocess.run([sys.executable, "-m", "optimize", "plan=true", "advisor=gpt4o", "optimizer=critic",
                           "pairs=[\"Паспорт Фамилия\"]", f"paths.store={tmp_path / 's.sqlite'}",
                           f"hydra.run.dir={tmp_path / 'out'}"], check=False, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # critic: 4 rounds, 1 re-ask each; 1500 + 400 tokens a call at gpt-4o's price in litellm's map
    assert "GPT4o, up to 8 calls, about $0.0620" in proc.stdout, proc.stdout
    assert "OPENAI_API_KEY" in proc.stdout


def test_litellm_price_reads_litellms_own_map():
    import litellm

    from models.advisor_client import LiteLLMAdvisor, litellm_price

    for model in ("gpt-4o", "deepseek/deepseek-chat", "anthropic/claude-sonnet-4-5"):
        expected = litellm.cost_per_token(model=model, prompt_tokens=1000, completion_tokens=100)
        price = litellm_price(model)
        assert price is not None and 1000 * price[0] + 100 * price[1] == pytest.approx(sum(expected)), model
    assert LiteLLMAdvisor(name="x", model="openai/unknown-self-hosted").estimated_cost_usd(10, 10) is None


@pytest.mark.parametrize("optimizer", [
    ManualOptimizer(candidates=["{question} только значением", "Поле: {question}"]),
    FewShotOptimizer(k=2, random_sets=2, swap_candidates=1, manual_candidates=["Поле: {question}"]),
    CriticOptimizer(rounds=2, patience=5, per_round=2, max_reasks=1, manual_candidates=["Поле: {question}"]),
    AdvisorOptimizer(n_candidates=2, max_reasks=1),
    ChainOptimizer({"s1": CriticOptimizer(rounds=1, per_round=1), "s2": FewShotOptimizer(random_sets=1)}),
], ids=lambda o: o.name)
def test_planned_work_bounds_what_an_optimizer_spends(tmp_path, optimizer):
    writer = _Writer()
    run = run_engine(tmp_path, optimizer, model=ScriptedAnswerModel(exact_marker="EXACT"), two_pairs=True,
                     advisor=writer if optimizer.uses_advisor else None)
    pairs, session = run.pairs, run.advisor
    visible = [dataclasses.replace(p, test=()) for p in pairs]
    rows = run.rows_by_key
    for pair in visible:
        row = rows[pair.key]
        spent = row["answer_model_evaluations"] - row["n_test"]
        assert 0 < spent <= optimizer.planned_evaluations(pair, None), (pair.key, spent)
        if optimizer.name == "manual":
            assert spent == optimizer.planned_evaluations(pair, None)
    assert writer.calls <= (optimizer.planned_advisor_calls(visible) or 0)

    plan = make_plan(pairs, [], ScriptedAnswerModel(exact_marker="EXACT"), optimizer, writer if session else None,
                     AnswerStore.open_read_only(tmp_path / "s.sqlite"), max_evaluations_per_pair=None)
    cached, known = plan.known
    assert known > 0 and cached == known  # every prompt known in advance was scored on val by the run
    if session is not None:
        assert plan.advisor.usd_per_call == pytest.approx(100 * 1e-5 + 20 * 1e-4)  # measured tokens, its price
        assert plan.advisor.seconds_per_call is not None and plan.wall_time_s() is not None


# -- sweeps ----------------------------------------------------------------------------
def _sweep(tmp_path, data, *overrides, launcher=(), timeout=240):
    args = cli_args(tmp_path, data, *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}", *launcher)
    args.insert(3, "-m")  # python -m optimize -m ...
    return subprocess.run(args, check=False, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=timeout)


def _canonical(record):
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def _check_sweep(tmp_path, jobs):
    sweep = tmp_path / "sweep"
    store = sqlite3.connect(tmp_path / "store.sqlite")
    finished = store.execute("SELECT COUNT(DISTINCT run_id), COUNT(*) FROM finished_pairs").fetchone()
    assert finished == (jobs, jobs * 2)  # every job ran, each finished both pairs
    duplicates = store.execute("SELECT COUNT(*) FROM (SELECT run_id, pair, record FROM trials "
                               "GROUP BY run_id, pair, record HAVING COUNT(*) > 1)").fetchone()[0]
    assert duplicates == 0
    stored = {}
    for run_id, pair, record in store.execute("SELECT run_id, pair, record FROM trials"):
        stored.setdefault(run_id, []).append(json.loads(record))
    for job in range(jobs):
        job_dir = sweep / str(job)
        assert (job_dir / "Scripted-VLM_sep_none.csv").is_file() and (job_dir / "run.json").is_file()
        logged = [json.loads(line) for line in (job_dir / "trials.jsonl").read_text(encoding="utf-8").splitlines()]
        run_id = logged[0]["run_id"]
        # each trial once, none missing
        assert sorted(map(_canonical, logged)) == sorted(map(_canonical, stored[run_id]))


@pytest.mark.parametrize("launcher", [(), ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")],
                         ids=["basic", "joblib"])
def test_multirun_on_one_store(tmp_path, launcher):
    data = make_task(tmp_path / "data", n_images=8)
    proc = _sweep(tmp_path, data, "optimizer=manual,fewshot", "split.seed=0,1", launcher=launcher)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("[optimize][INFO] - mean test CER") == 4  # the entry point's last line, per job
    _check_sweep(tmp_path, jobs=4)


def test_an_advisor_for_an_optimizer_that_uses_none_does_not_make_another_run(tmp_path):
    """``optimizer=manual,fewshot advisor=none,local`` is two runs, not four: the job that gets
    an advisor it does not use has the same run id, waits for the other's lease (jobs run two
    at a time) or finds its pairs finished, and computes nothing again."""
    data = make_task(tmp_path / "data", n_images=8)
    proc = _sweep(tmp_path, data, "optimizer=manual,fewshot", "advisor=none,local", "model.delay_s=0.02",
                  launcher=("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads((tmp_path / "sweep" / str(job) / "run.json").read_text()) for job in range(4)]
    by_run: dict[str, list[dict]] = {}
    for record in records:
        assert record["advisor"] == "none"
        by_run.setdefault(record["run_id"], []).append(record)
    assert sorted(len(jobs) for jobs in by_run.values()) == [2, 2]
    for first, second in (sorted(jobs, key=lambda r: len(r["resumed_pairs"])) for jobs in by_run.values()):
        assert first["resumed_pairs"] == [] and first["cost"]["model_calls_this_attempt"] > 0
        assert len(second["resumed_pairs"]) == 2 and second["cost"]["model_calls_this_attempt"] == 0
    store = sqlite3.connect(tmp_path / "store.sqlite")
    assert store.execute("SELECT COUNT(DISTINCT run_id), COUNT(*) FROM finished_pairs").fetchone() == (2, 4)


@pytest.mark.parametrize("launcher", [("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"),
                                      ("hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5")],
                         ids=["joblib", "submitit_local"])
def test_a_failed_pair_in_a_worker_process_fails_the_sweep(tmp_path, launcher):
    """Jobs running in other processes (joblib workers, submitit jobs as on SLURM) still make
    the sweep exit 1 when their pairs failed, after every job ran."""
    data = make_task(tmp_path / "data", n_images=8)
    proc = _sweep(tmp_path, data, "optimizer=manual,fewshot", 'model.fail_pair="passport Номер"',
                  launcher=launcher)
    assert proc.returncode == 1, proc.stderr[-3000:]
    listed = (tmp_path / "sweep" / "failed_jobs.txt").read_text().split()
    assert sorted(Path(p).name for p in listed) == ["0", "1"]
    assert (tmp_path / "sweep" / "1" / "Scripted-VLM_sep_none.csv").is_file()  # the other pair's row was written


def test_slurm_launcher_config_composes():
    env = dict(cli_env(), SLURM_PARTITION="gpu-a100")
    proc = subprocess.run([sys.executable, "-m", "optimize", "hydra/launcher=slurm_gpu", "--cfg", "hydra",
                           "--resolve", "--package", "hydra.launcher"], check=False, cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "SlurmLauncher" in proc.stdout and "gpus_per_node: 1" in proc.stdout and "partition: gpu-a100" in proc.stdout


# -- help and progress -------------------------------------------------------------------
def test_help_opens_with_what_the_tool_does_and_its_commands():
    proc = subprocess.run([sys.executable, "-m", "optimize", "--help"], check=False, cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("vlm-prompt-opt: find the best prompt") and "powered by Hydra" not in out.split("\n")[0]
    commands = out.index("== Common commands ==")
    for command in ("python -m optimize  ", "task.csv=", "advisor=gpt4o", "plan=true", "-m optimizer=",
                    "hydra/launcher=joblib"):
        assert command in out[commands:out.index("== Config ==")], command
    assert out.index("== Config ==") < out.index("budget:")  # the config dump follows


def test_progress_line_shows_pair_step_best_budget_and_advisor(tmp_path, capsys):
    critic = CriticOptimizer(rounds=1, per_round=1, rule_edits=False)
    run_engine(tmp_path, critic, model=ScriptedAnswerModel(exact_marker="EXACT"), advisor=_Writer(), two_pairs=True,
               budget=50, progress=True)
    err = capsys.readouterr().err
    assert "passport Номер | step " in err and re.search(r"best val CER \d\.\d{3} \| evals \d+/50", err)
    assert "advisor 1 calls $0.0020" in err and "advisor 2 calls $0.0040" in err


def test_progress_is_logged_now_and_then_off_a_terminal(tmp_path):
    data = make_task(tmp_path / "data", n_images=8)
    quiet = run_cli(tmp_path, data)  # default: a line every 60 s, and the last one
    assert quiet.returncode == 0, quiet.stderr
    lines = [ln for ln in quiet.stderr.splitlines() if "[optimize.progress]" in ln]
    assert len(lines) == 1 and "pairs 2/2 | passport" in lines[0] and "evals 8/300" in lines[0]
    often = run_cli(tmp_path / "b", data, "progress_every_s=0.000001")  # a store of its own: nothing resumed
    lines = [ln for ln in often.stderr.splitlines() if "[optimize.progress]" in ln]
    # a line per event at most (a pair started, scored, finished): 2 x (1 + 5 + 1), fewer than the 22 queries
    assert 2 < len(lines) <= 14
    assert "\r" not in often.stderr  # no in-place bar in a log
