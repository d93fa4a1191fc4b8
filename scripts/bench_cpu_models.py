"""Benchmark the embedded CPU models on the demo set; prints the figures in docs/benchmarks.md.

    .venv/bin/python scripts/bench_cpu_models.py [--examples 24] [--pairs 2]

1. OCR seconds per image (Tesseract, rus+eng, the model's psm).
2. Median seconds per answer-model query (Qwen2.5-0.5B via llama.cpp, OCR cached,
   three prompt candidates per example as an optimizer would send them).
3. Cold run vs fully cached re-run of the same `python -m optimize` command.
4. Local advisor: seconds per proposal of about 150 tokens (server already up).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from hydra.utils import instantiate

    from optimize.answer_store import AnswerStore
    from prompt_opt_api import Prompt
    from tasks.docqa_csv import load_task
    from scripts.default_models import advisor_config, model_config

    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=24)
    parser.add_argument("--pairs", type=int, default=2, help="pairs in the cold/cached CLI run")
    args = parser.parse_args()
    task = load_task(ROOT / "tasks/demo/task.csv")
    examples = task.examples[:: max(1, len(task.examples) // args.examples)][: args.examples]

    with tempfile.TemporaryDirectory() as tmp:
        model = instantiate(model_config())
        model.use_cache(AnswerStore(Path(tmp) / "s.sqlite"))
        ocr_times, seen = [], set()
        for ex in examples:
            if ex.image_sha256 not in seen:
                seen.add(ex.image_sha256)
                t = time.perf_counter()
                model.ocr_text(ex)
                ocr_times.append(time.perf_counter() - t)
        model.answer([(Prompt("{question}"), examples[0])])  # load weights outside the timing
        prompts = [Prompt("{question}"), Prompt("{question} Ответь только значением поля, без пояснений."),
                   Prompt("Найди в тексте документа ответ. {question} Выпиши только значение.")]
        query_times = []
        for prompt in prompts:
            for ex in examples:
                t = time.perf_counter()
                model.answer([(prompt, ex)])
                query_times.append(time.perf_counter() - t)
        model.close()
    print(f"OCR: {len(ocr_times)} images, median {statistics.median(ocr_times):.2f} s/image, "
          f"mean {statistics.mean(ocr_times):.2f}")
    print(f"answer model: {len(query_times)} queries, median {statistics.median(query_times):.3f} s/query, "
          f"p90 {sorted(query_times)[int(len(query_times) * 0.9)]:.3f}")

    pairs = sorted({e.pair_key for e in task.examples})[: args.pairs]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "optimize", "optimizer=manual", "advisor=none", f"paths.store={tmp}/store.sqlite",
               f"paths.results_dir={tmp}/results", f"hydra.run.dir={tmp}/run",
               "pairs=[" + ",".join(f'"{p}"' for p in pairs) + "]"]
        times = []
        for _ in range(2):
            t = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
            times.append(time.perf_counter() - t)
    print(f"CLI on {len(pairs)} pairs: cold {times[0]:.1f} s, cached re-run {times[1]:.1f} s, "
          f"ratio {times[0] / times[1]:.1f}x")

    advisor = instantiate(advisor_config(max_tokens=150, temperature=0.0))
    try:
        advisor.complete([{"role": "user", "content": "hi"}])  # start the server outside the timing
        ask = [{"role": "user", "content": "Напиши 5 разных вариантов инструкции для модели, которая извлекает "
                                           "фамилию из текста паспорта. Каждый вариант с новой строки."}]
        runs = []
        for _ in range(3):
            before = advisor.usage.completion_tokens
            t = time.perf_counter()
            advisor.complete(ask)
            runs.append((time.perf_counter() - t, advisor.usage.completion_tokens - before))
    finally:
        advisor.close()
    print("local advisor: " + ", ".join(f"{s:.1f} s for {n} tokens" for s, n in runs)
          + f"; median {statistics.median(s for s, _ in runs):.1f} s a proposal")


if __name__ == "__main__":
    main()
