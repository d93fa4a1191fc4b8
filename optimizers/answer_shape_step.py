"""``optimizer=answer_shape``: the best prompt so far, its replies trimmed to the train answers' shapes.

A small reader often writes the right value plus more (a date with its time, a currency before
a total). This step scores the prompt it starts from (``chain`` passes the previous step's best;
alone: the baseline) on full val, then the same prompt with ``Prompt.answer_shapes`` made from
the pair's **train** answers (``AnswerShapes.from_answers``), on full val too. The trimmed
prompt sends the same requests, so both scores are the same answers: when the prompt was
scored on val before (as in ``quick``, whose earlier steps did), the step costs no model call
and no budget. The engine's rule picks the winner: the trimmed prompt wins only with a strictly
lower val CER (a tie goes to the earlier, untrimmed one), so a field whose trim hurts on val
(company names of many forms) keeps its replies whole. No page text is read: it works for a
model that reads pixels as for one that reads text.

No trimmed candidate is scored when the prompt is perfect on val, when the pair has no train
answer, or when the train answers' shapes are not a form to trim to (more than
``MAX_SHAPES``, or one over ``MAX_SHAPE_CHARS`` characters: ``AnswerShapes.problem``).
"""

from __future__ import annotations

import dataclasses
import logging

from prompt_opt_api import Advisor, Optimizer, Pair, Prompt, PromptEvaluator, Trial, baseline_prompt
from prompt_opt_api import derived_provenance
from prompt_opt_api.answer_shape import AnswerShapes

log = logging.getLogger(__name__)


class AnswerShapeStep(Optimizer):
    """Tries the best prompt so far with its replies trimmed to the train answers' shapes (module docstring)."""

    name = "answer_shape"

    def planned_evaluations(self, pair: Pair, budget: int | None) -> int | None:
        """The starting prompt on val (free when an earlier step scored it); the trimmed one is always free."""
        return len(pair.val)

    def optimize(self, pair: Pair, evaluator: PromptEvaluator, advisor: Advisor | None) -> list[Trial]:
        incumbent = self.starting_prompts[0] if self.starting_prompts else baseline_prompt()
        score = evaluator.score(incumbent, pair.val)
        trials = [Trial(incumbent, "val", score, step=0, optimizer=self.name)]
        if score.cer == 0.0 or incumbent.answer_shapes is not None:
            return trials  # nothing to gain, or trimmed already
        shapes = AnswerShapes.from_answers(ex.answer for ex in pair.train)
        if not shapes.shapes:
            return trials  # no train answer to take a shape from
        if (problem := shapes.problem()) is not None:
            log.info("pair %r: no answer-shape trim tried: the train answers' shapes %s", pair.key, problem)
            return trials
        trimmed = dataclasses.replace(incumbent, answer_shapes=shapes,
                                      provenance=derived_provenance(incumbent.provenance, "rule", "answer-shapes"))
        trials.append(Trial(trimmed, "val", evaluator.score(trimmed, pair.val), step=1, optimizer=self.name))
        return trials
