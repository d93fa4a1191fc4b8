"""What a job returns to Hydra (what a sweeper minimizes) is the mean val CER of its winners, never test CER."""

import csv
import json
import math

import pytest

from optimize.sweep_value import sweep_value
from tests.cli_helpers import run_cli
from tests.task_factory import draw_image, make_task, write_csv

PROBE = "+hydra.callbacks.probe._target_=tests.sweep_value_probe.RecordReturn"


def _returned(tmp, data, *overrides):
    """The value the job handed to Hydra, as a Hydra callback saw it, and the run's results rows."""
    tmp.mkdir(exist_ok=True)
    probe = tmp / "returned.jsonl"
    # only the data set's question, answered one character short: a CER of 1 / the answer's length
    proc = run_cli(tmp, data, "prompts.manual=[]", PROBE, f"+hydra.callbacks.probe.path={probe}", *overrides)
    (line,) = probe.read_text().splitlines()
    with (tmp / "out" / "Scripted-VLM_sep_none.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return proc, json.loads(line), rows


def _answers_of_every_length(root):
    """One pair whose answers have 2 to 13 letters: a one-letter miss costs 1/length, so the
    val and test splits' mean CERs differ whatever pages each split holds."""
    rows = []
    for i, length in enumerate(range(2, 14)):
        draw_image(root / f"images/{i}.png", f"doc {i}")
        rows.append([f"images/{i}.png", "Какая фамилия?", "Ивановская-Петрова"[:length], "passport", "Фамилия", ""])
    return write_csv(root / "task.csv", rows)


def test_a_job_returns_the_mean_val_cer_of_its_winners_not_test(tmp_path):
    data = _answers_of_every_length(tmp_path / "data")
    proc, value, rows = _returned(tmp_path, data)
    assert proc.returncode == 0, proc.stderr
    mean_val = sum(float(r["val_cer"]) for r in rows) / len(rows)
    mean_test = sum(float(r["cer"]) for r in rows) / len(rows)
    assert abs(mean_val - mean_test) > 1e-3, (mean_val, mean_test)  # the data tells the two apart
    assert value == pytest.approx(mean_val, abs=1e-4)  # the CSV's cells have 4 decimals
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["mean_test_cer"] == pytest.approx(mean_test, abs=1e-4)  # test CER stays in the results
    assert "returned to a sweeper" in proc.stderr


def test_a_job_whose_pair_fails_returns_no_better_value_than_an_honest_one(tmp_path):
    """Failing the pair it does worst on must not lower a job's value: the value is inf."""
    data = make_task(tmp_path / "data", n_images=8)
    _, honest, rows = _returned(tmp_path / "honest", data)
    worst = max(rows, key=lambda r: float(r["val_cer"]))["doc type question type"]
    # its own store: a cached answer would not reach the model's scripted failure
    proc, value, rows = _returned(tmp_path / "failing", data, f"model.fail_pair='{worst}'")
    assert proc.returncode == 1, proc.stderr
    survivors = [float(r["val_cer"]) for r in rows if r["val_cer"]]
    assert survivors and sum(survivors) / len(survivors) < honest  # leaving the pair out would have looked better
    assert value == math.inf


def test_the_sweep_value_of_rows():
    ok = {"status": "ok", "cer": "0.1000", "val_cer": "0.3000"}
    assert sweep_value([ok, dict(ok, val_cer="0.1000")]) == pytest.approx(0.2)
    skipped = {"status": "skipped: only 1 image", "cer": ""}
    assert sweep_value([ok, skipped]) == pytest.approx(0.3)  # the data decides a skip, not the job
    assert sweep_value([ok, {"status": "failed: RuntimeError: boom", "cer": ""}]) == math.inf
    assert sweep_value([ok, dict(ok, val_cer="")]) == math.inf
    assert sweep_value([skipped]) == math.inf and sweep_value([]) == math.inf
