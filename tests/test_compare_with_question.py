"""scripts/compare_with_question.py reads everything that decides its numbers from the run it compares."""

import csv
import subprocess
import sys

from tasks.cer_metric import CerMetric
from tasks.docqa_csv import load_task
from tasks.pair_splits import SplitConfig, split_pairs
from tests.cli_helpers import REPO, cli_env, run_cli
from tests.task_factory import make_task


def _question_test_cer(data, split):
    """What the scripted model's "{question}" answers (one character short) score on the test split."""
    (pair,), _ = split_pairs(load_task(data).examples, split)
    return sum(CerMetric().cer(e.answer, e.answer[:-1]) for e in pair.test) / len(pair.test)


def test_compares_on_the_runs_own_split_and_model(tmp_path):
    data = make_task(tmp_path / "data", n_images=10, with_second_pair=False)
    # a split other than the default: a script with hard-coded fractions scores other test images
    run = run_cli(tmp_path, data, "split.train=0.5", "split.val=0.2", "split.seed=3")
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "scripts/compare_with_question.py", str(out)], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with next(out.glob("*_sep_*.csv")).open(encoding="utf-8") as fh:
        (row,) = csv.DictReader(fh)
    # the scripted model answers "{question}" one character short on every page (CER > 0),
    # and the manual prompts' marker exactly (CER 0): the run chose the marker
    assert float(row["cer"]) == 0.0 and int(row["n_test"]) == 3
    lines = proc.stdout.splitlines()
    assert lines[1] == "optimized test CER mean 0.000 median 0.000 clipped at 1 0.000 (1 pairs)"
    question_cer = _question_test_cer(data, SplitConfig(train=0.5, val=0.2, seed=3))
    assert question_cer != _question_test_cer(data, SplitConfig())  # the default split would show
    assert lines[0].startswith(f"question  test CER mean {question_cer:.3f} ")
    assert lines[2].startswith(f"optimized - question: mean {-question_cer:+.3f}")
    assert "better 1, equal 0, worse 0" in lines[2]
