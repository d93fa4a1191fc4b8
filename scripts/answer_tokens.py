"""How many tokens the answers of a task CSV take with the CPU answer model's tokenizer: per
pair, the longest answer in characters and in tokens, and the most tokens a character over
all answers (``fit_answer_cap`` assumes at most 1.0: optimize/answer_cap.py).

    .venv/bin/python scripts/answer_tokens.py ../shared/data/sroie_dev/annotation.csv

Loads only the GGUF's vocabulary (seconds, no weights); the weights come from the model store.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.default_models import model_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path)
    args = parser.parse_args()
    from hydra.utils import instantiate
    from llama_cpp import Llama

    from models.model_store import ModelStore

    cfg = model_config()
    path = ModelStore(cfg.store_dir).fetch(instantiate(cfg.weights))
    vocab = Llama(model_path=str(path), vocab_only=True, verbose=False)

    def tokens(text: str) -> int:
        return len(vocab.tokenize(text.encode(), add_bos=False, special=False))

    answers = defaultdict(list)
    with args.csv.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            answers[(row["doc_class"], row["question_type"])].append(row["answer"])
    worst = 0.0
    for (doc_class, question_type), values in sorted(answers.items()):
        counts = [tokens(a) for a in values]
        worst = max([worst] + [n / len(a) for n, a in zip(counts, values) if a])
        print(f"{doc_class} {question_type}: longest {max(map(len, values))} characters, {max(counts)} tokens")
    print(f"most tokens a character: {worst:.2f}")


if __name__ == "__main__":
    main()
