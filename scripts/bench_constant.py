"""The constant answer as a contender of ``scripts/bench_optimizers.py``'s tables (``--constant``).

For each split seed and field of a results file, the field's constant answer
(``optimize.constant_answer``: the train answer with the lowest val CER, given to every test
page) on the split the cells' runs made and under their metric: the file's task CSV and the
overrides its cells' runs were given (all but the optimizer's and the run folder's). It reads no
page and calls no model (a few seconds a seed for the task and the split), so it is computed
when the tables are printed, not stored: a cell of the contender ``constant answer`` per seed
and field, with its test answers by CSV row, so the paired tables set every contender against it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from scripts.bench_results import BenchResults, Cell, Prediction

CONSTANT = "constant answer"


def constant_cells(results: BenchResults, seeds: Iterable[int], pairs: Iterable[str],
                   overrides: Sequence[str]) -> dict[str, Cell]:
    """The ``constant answer`` cells of ``seeds`` × ``pairs``, on the split and under the metric that
    ``results``' task CSV and the cells' ``overrides`` (``bench_optimizers.task_overrides``) compose.

    Raises:
        ValueError: the file's settings name no task CSV, or it is gone.
    """
    from hydra.utils import instantiate

    from optimize.constant_answer import constant_answer
    from scripts.ocr_ceiling import compose_config, require

    csv = results.settings.get("csv")
    if not csv or not Path(csv).is_file():
        raise ValueError(f"--constant: the results file names no task CSV that exists here ({csv!r})")
    cells, pairs = {}, sorted(set(pairs))
    for seed in sorted(set(seeds)):
        cfg = compose_config(["task=csv", f"task.csv={csv}", f"split.seed={seed}", *overrides])
        require(cfg, "task", "split")
        task = instantiate(cfg.task, _partial_=True)()
        metric = instantiate(cfg.metric)
        for pair in instantiate(cfg.split).split(task.examples, pairs)[0]:
            constant = constant_answer(pair, metric)
            if constant is None:
                continue
            answers = {e.source_row: e for e in pair.test}
            test = [Prediction(p.row, answers[p.row].answer, constant.answer, p.cer, answers[p.row].image_sha256)
                    for p in constant.test]
            cell = Cell(CONSTANT, seed, pair.key, 0, test, val_cer=constant.val_cer, evaluations=0, advisor_calls=0,
                        prompt=constant.answer, author="train answers", n_demos=0,
                        train_answers=[e.answer for e in pair.train], answer_model_s=0.0, wall_s=0.0)
            cells[cell.key] = cell
    return cells
