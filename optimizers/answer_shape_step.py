"""``optimizer=answer_shape``: the best prompt so far, its replies trimmed to the train answers' shapes
and cut to the longest train answer's length.

A small reader often writes the right value plus more: a date with its time, a currency before
a total (the shape trim), or an address followed by the lines after it on the page, the phone,
the tax number, the items (the length cut). This step scores the prompt it starts from
(``chain`` passes the previous step's best; alone: the baseline) on full val, then three
variants of it on full val too, each made from the pair's **train** answers
(``AnswerShapes.from_answers``, ``Prompt.answer_shapes``): the replies trimmed to the train
answers' shapes; cut to the longest train answer's length (``AnswerShapes.max_chars``); both,
the shape trim first. The variants send the same requests, so every score is the same answers:
when the prompt was scored on val before (as in ``quick``, whose earlier steps did), the step
costs no model call and no budget. The engine's rule picks the winner: a variant wins only with
a strictly lower val CER than the untrimmed prompt (a tie goes to the earlier: untrimmed, shapes,
length, both), so a field whose trim hurts on val (company names of many forms) keeps its
replies whole. No page text is read: it works for a model that reads pixels as for one that reads text.

No variant is scored when the prompt is perfect on val or the pair has no non-empty train
answer; the length variants are left out when that answer is over ``MAX_CUT_CHARS`` characters,
the shape variants when the train answers' shapes are not a form to trim
to (more than ``MAX_SHAPES``, or one over ``MAX_SHAPE_CHARS`` characters: ``AnswerShapes.problem``).
"""

from __future__ import annotations

import dataclasses
import logging

from prompt_opt_api import Advisor, Optimizer, Pair, Prompt, PromptEvaluator, Trial, baseline_prompt
from prompt_opt_api import derived_provenance
from prompt_opt_api.answer_shape import AnswerShapes

log = logging.getLogger(__name__)


class AnswerShapeStep(Optimizer):
    """Tries the best prompt so far with its replies trimmed to the train answers' shapes, cut to the
    longest train answer's length, and both (module docstring)."""

    name = "answer_shape"

    def planned_evaluations(self, pair: Pair, budget: int | None) -> int | None:
        """The starting prompt on val (free when an earlier step scored it); the variants are always free."""
        return len(pair.val)

    def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
        incumbent = self.starting_prompts[0] if self.starting_prompts else baseline_prompt()
        score = evaluator.score(incumbent, pair.val)
        trials = [Trial(incumbent, "val", score, step=0, optimizer=self.name)]
        if score.cer == 0.0 or incumbent.answer_shapes is not None:
            return trials  # nothing to gain, or trimmed already
        for detail, trim in variants(pair):
            trimmed = dataclasses.replace(incumbent, answer_shapes=trim,
                                          provenance=derived_provenance(incumbent.provenance, "rule", detail))
            trials.append(Trial(trimmed, "val", evaluator.score(trimmed, pair.val), step=1, optimizer=self.name))
        return trials


def variants(pair: Pair) -> list[tuple[str, AnswerShapes]]:
    """The trims the pair's train answers make, as ``(provenance detail, trim)``, in the order they are
    scored: shapes only, length only, both; none without a non-empty train answer, no shapes when the
    train answers' shapes fail ``AnswerShapes.problem``."""
    answers = [ex.answer for ex in pair.train]
    shapes = AnswerShapes.from_answers(answers)
    length = AnswerShapes.from_answers(answers, shapes=False, length=True)
    if length.max_chars is None:
        return []  # no train answer to take a shape or a length from
    cut = [("answer-length", length)] if length.problem() is None else []  # over MAX_CUT_CHARS: no cut
    if not shapes.shapes:
        return cut
    if (problem := shapes.problem()) is not None:
        log.info("pair %r: no answer-shape trim tried: the train answers' shapes %s", pair.key, problem)
        return cut
    both = [("answer-shapes+length", AnswerShapes(shapes.shapes, length.max_chars))] if cut else []
    return [("answer-shapes", shapes), *cut, *both]
