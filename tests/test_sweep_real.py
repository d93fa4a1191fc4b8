"""A real 2x2 multirun: the CPU answer model, the demo set, a tiny budget, with Hydra's basic
launcher and with the joblib launcher (2 jobs at once on one store). Four runs, the task's
collected OptimalPrompts CSV and report, every trial of every job in the store exactly once.

Slow (a few minutes on 2 cores): `.venv/bin/python -m pytest -m slow tests/test_sweep_real.py`.
"""

import csv
import json
import sqlite3
import subprocess

import pytest

from tests.cli_helpers import REPO, cli_args, cli_env
from scripts.default_models import models_dir

pytestmark = pytest.mark.slow
PAIR = "Паспорт Фамилия"


@pytest.mark.parametrize("launcher", [(), ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")],
                         ids=["basic", "joblib"])
def test_real_two_by_two_sweep(tmp_path, launcher):
    args = cli_args(tmp_path, REPO / "tasks/demo/task.csv", "optimizer=manual,fewshot",
                    "budget.evaluations_per_pair=9,12", f'pairs=["{PAIR}"]', f"paths.models={models_dir()}",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}", *launcher, model="ocr_llm")
    args.insert(3, "-m")
    proc = subprocess.run(args, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]

    store = sqlite3.connect(tmp_path / "store.sqlite")
    assert store.execute("SELECT COUNT(DISTINCT run_id), COUNT(*) FROM finished_pairs").fetchone() == (4, 4)
    stored = {}
    for run_id, record in store.execute("SELECT run_id, record FROM trials"):
        stored.setdefault(run_id, []).append(json.dumps(json.loads(record), sort_keys=True, ensure_ascii=False))
    for job in range(4):
        logged = [json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False)
                  for line in (tmp_path / "sweep" / str(job) / "trials.jsonl").read_text().splitlines()]
        run_id = json.loads(logged[0])["run_id"]
        assert sorted(logged) == sorted(stored[run_id])  # every trial once, none missing
        assert len(set(logged)) == len(logged)

    (task,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]  # one task: the same data and split
    assert len(list((task / "runs").iterdir())) == 4
    with (task / "Qwen2.5-0.5B-OCR_sep_OptimalPrompts.csv").open(encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames[:3] == ["doc type question type", "optimal prompt", "cer"]
        (row,) = list(reader)
    assert row["doc type question type"] == PAIR and row["run_id"] in stored
    report = (task / "report.html").read_text(encoding="utf-8")
    assert "<img" in report and PAIR in report
