"""Seconds per query and CER of the CPU answer model with k retrieved demos (``bench_optimizers.py --demo-cost``)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from optimize.stats import clipped_mean


def demo_cost(task_csv: Path, pair_key: str, ks: list[int], demo_chars: list[int], n_examples: int = 8,
              extra: tuple[str, ...] = ()) -> None:
    """Seconds per ocr_llm query and mean CER with k demos retrieved by OCR text, whole demo
    pages against pages cut around their answers (``model.demo_chars``).

    Queries run as the evaluator sends them: one prompt over the first ``n_examples`` val
    examples (split as ``extra`` says, e.g. ``split.val=0.2``; ``model.tesseract_lang=eng`` sets
    the model), the pages' OCR done first (not
    what is measured). k = 0 is the instruction alone; its first pass reads each page,
    so it is timed once more after (a later prompt on cached pages).
    """
    import tempfile

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from optimize.answer_store import AnswerStore
    from prompt_opt_api import Prompt
    from prompt_opt_api.demo_retrieval import OCR_TFIDF, DemoRetrieval, PageSignatures
    from tasks.cer_metric import CerMetric
    from scripts.default_models import model_config
    from scripts.ocr_ceiling import compose_config, split_of

    split = [o for o in extra if o.startswith("split.")]
    model_settings = OmegaConf.to_container(OmegaConf.from_dotlist(
        [o[len("model."):] for o in extra if o.startswith("model.")]))  # typed as Hydra types them
    pair = split_of(compose_config(["task=csv", f"task.csv={task_csv}", *split]), [pair_key])[0]
    examples = list(pair.val)[:n_examples]
    instruction = "{question} Reply with the value only, exactly as printed."
    metric = CerMetric()
    with tempfile.TemporaryDirectory() as tmp:
        store = AnswerStore(Path(tmp) / "s.sqlite")
        for chars in demo_chars:
            model = instantiate(model_config(**{**model_settings, "demo_chars": chars or None}))
            model.use_cache(store)
            for ex in [*examples, *pair.train]:
                model.ocr_text(ex)
            signatures = PageSignatures(model.page_text)
            for k in ks:
                if k == 0 and chars != demo_chars[0]:
                    continue  # no demos: nothing to cut
                rule = DemoRetrieval(k, pair.train, OCR_TFIDF) if k else None
                for repeat in range(2 if k == 0 else 1):
                    prompt = Prompt(instruction + " " * repeat, retrieval=rule)
                    requests = [(prompt.for_example(ex, signatures), ex) for ex in examples]
                    started = time.monotonic()
                    answers = model.answer(requests)
                    per_query = (time.monotonic() - started) / len(examples)
                    cer = [metric.cer(ex.answer, a) for ex, a in zip(examples, answers)]
                    label = "whole pages" if not chars else f"{chars} chars around the answer"
                    note = " (pages cached)" if repeat else ""
                    print(f"demo cost {pair_key}: k={k} demos, {label}{note}: {per_query:.2f} s/query, "
                          f"mean CER {statistics.mean(cer):.3f}, clipped {clipped_mean(cer):.3f}", flush=True)
            model.close()
