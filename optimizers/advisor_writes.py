"""Meta-prompt building shared by the ``advisor`` and ``critic`` optimizers."""

from __future__ import annotations

import base64
import io
from collections import Counter
from collections.abc import Sequence

from optimizers import meta_prompts as text
from optimizers.mistakes import Mistake
from prompt_opt_api import Message, Pair, Prompt, Score


def task_block(pair: Pair, model_name: str, max_answers: int = 8) -> str:
    """Task, document class, field, questions and true train answers."""
    questions = "\n".join(f"- {q}" for q in pair.questions[:5])
    answers = "\n".join(f"- {ex.answer}" for ex in pair.train[:max_answers]) or "- (no training documents)"
    return text.TASK.format(model=model_name, doc_class=pair.doc_class, question_type=pair.question_type,
                            questions=questions, answers=answers)


def placeholder_rule(pair: Pair) -> str:
    return text.PLACEHOLDER_RULE.format(example_question=pair.questions[0] if pair.questions else "")


def mistakes_block(mistakes: Sequence[Mistake]) -> str:
    if not mistakes:
        return text.NO_MISTAKES
    return "\n".join(f"- \"{m.expected}\" -> \"{m.answered[:120]}\" ({m.error_class})" for m in mistakes)


def error_counts_block(score: Score) -> str:
    """A score's wrong answers by class (``prompt_opt_api.error_classes``), counts only: what kinds
    of mistakes the val answers are, never the answers."""
    counts = Counter(r.error_class for r in score.results if r.error_class)
    if not counts:
        return text.NO_WRONG_ANSWERS
    return "\n".join(f"- {n} {name}: {text.ERROR_CLASS_MEANINGS.get(name, name)}" for name, n in counts.most_common())


def scored_block(scored: Sequence[tuple[Prompt, Score]]) -> str:
    return "\n".join(f"{i + 1}. CER {score.cer:.3f}: <prompt>{prompt.text}</prompt>"
                     for i, (prompt, score) in enumerate(scored))


def with_page_images(content: str, examples: Sequence, max_images: int, max_side: int = 768) -> list[dict]:
    """A user message's content with the pages of ``examples`` attached, downscaled (VLM advisors)."""
    from PIL import Image  # lazy

    parts: list[dict] = [{"type": "text", "text": content}]
    for ex in list(examples)[:max_images]:
        with Image.open(ex.image) as img:
            page = img.convert("RGB")
            page.thumbnail((max_side, max_side))
            buf = io.BytesIO()
            page.save(buf, format="JPEG", quality=80)
        url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def conversation(user: str | list[dict]) -> list[Message]:
    return [{"role": "system", "content": text.SYSTEM}, {"role": "user", "content": user}]
