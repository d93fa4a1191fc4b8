"""Character error rate on normalized strings (jiwer), per example and as a mean."""

from __future__ import annotations

from dataclasses import dataclass

from prompt_opt_api.metric import MIN_CLIP_AT, normalize_answer


@dataclass(frozen=True)
class CerMetric:
    """CER after normalization: NFKC, whitespace collapsed, surrounding quotes and
    punctuation stripped, and (by default) case folded.

    Args:
        casefold: Compare case-insensitively (default True).
        clip_at: Cap each example's CER at this value (None: raw CER, which exceeds 1.0
            when the prediction has many extra characters, e.g. a chatty answer); at least
            ``MIN_CLIP_AT`` (1.0), so a wrong answer never scores better than an empty one.

    Raises:
        ValueError: for a ``clip_at`` below ``MIN_CLIP_AT`` (or not a number).
    """

    casefold: bool = True
    clip_at: float | None = None

    def __post_init__(self) -> None:
        if self.clip_at is not None and not (isinstance(self.clip_at, (int, float)) and self.clip_at >= MIN_CLIP_AT):
            raise ValueError(f"clip_at={self.clip_at!r}: must be >= {MIN_CLIP_AT:g} or None (below it a wrong "
                             "answer would score better than an empty one)")

    def normalize(self, text: str) -> str:
        return normalize_answer(text, casefold=self.casefold)

    def cer(self, reference: str, prediction: str) -> float:
        """CER of ``prediction`` against ``reference``; 1.0 for an empty prediction.

        Raises:
            ValueError: if the reference is empty after normalization (no CER exists).
        """
        import jiwer  # lazy: keeps `--help` fast

        ref = self.normalize(reference)
        if not ref:
            raise ValueError(f"reference {reference!r} is empty after normalization")
        hyp = self.normalize(prediction)
        if not hyp:
            return 1.0
        value = float(jiwer.cer(ref, hyp))
        return value if self.clip_at is None else min(value, self.clip_at)

    def exact(self, reference: str, prediction: str) -> bool:
        return self.normalize(reference) == self.normalize(prediction)
