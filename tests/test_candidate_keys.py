"""What tells two candidates apart is written in two places: ``PromptPool.key`` (in memory: no
candidate scored twice) and the trial record's ``(prompt, demo_rows)`` (persisted: selection, the
digest and resumed runs read it). A new ``Prompt`` field that makes another candidate must be named
in both, or two candidates merge in one and not the other; this test lists every field so one added
later fails here until both keys (and the answer key, where it changes the request) say what it is."""

import dataclasses

import pytest

from optimize.trial_log import demo_rows
from optimizers.prompt_pool import PromptPool
from prompt_opt_api import Prompt
from prompt_opt_api.answer_shape import AnswerShapes
from prompt_opt_api.demo_retrieval import SIGNATURE, SIGNATURES, DemoRetrieval
from tests.engine_harness import one_pair

# fields that change the request (the answer key); answer_shapes trims the reply only
CHANGES_THE_REQUEST = {"text", "demos", "retrieval", "demo_chars"}
NOT_A_CANDIDATE_FIELD = {"provenance"}  # who wrote it: the same candidate whoever did


def _variants(train):
    """For each candidate field, prompts that differ from each other in that field only."""
    rule = DemoRetrieval(k=2, pool=tuple(train), signature=SIGNATURE)
    other_signature = next(s for s in SIGNATURES if s != SIGNATURE)
    return {
        "text": [Prompt("{question}"), Prompt("{question} only the value")],
        "demos": [Prompt("{question}"), Prompt("{question}", demos=(train[0],)), Prompt("{question}", demos=(train[1],)),
                  Prompt("{question}", demos=(train[0], train[1])), Prompt("{question}", demos=(train[1], train[0]))],
        "retrieval": [Prompt("{question}"), Prompt("{question}", retrieval=rule),
                      Prompt("{question}", retrieval=dataclasses.replace(rule, k=3)),
                      Prompt("{question}", retrieval=dataclasses.replace(rule, signature=other_signature)),
                      Prompt("{question}", retrieval=dataclasses.replace(rule, distinct_answers=True))],
        "demo_chars": [Prompt("{question}", retrieval=rule), Prompt("{question}", retrieval=rule, demo_chars=200),
                       Prompt("{question}", retrieval=rule, demo_chars=300)],
        "answer_shapes": [Prompt("{question}"), Prompt("{question}", answer_shapes=AnswerShapes(("9/9/9",))),
                          Prompt("{question}", answer_shapes=AnswerShapes(("9/9/9", "9-9-9"))),
                          Prompt("{question}", answer_shapes=AnswerShapes((), 10)),
                          Prompt("{question}", answer_shapes=AnswerShapes(("9/9/9",), 10))],
    }


def _persisted_key(prompt):
    return prompt.text, tuple(demo_rows(prompt))


@pytest.fixture(scope="module")
def variants(tmp_path_factory):
    return _variants(one_pair(tmp_path_factory.mktemp("task")).train)


def test_every_prompt_field_is_either_a_candidate_field_with_variants_here_or_named_as_not_one(variants):
    fields = {f.name for f in dataclasses.fields(Prompt)}
    unknown = fields - set(variants) - NOT_A_CANDIDATE_FIELD
    assert not unknown, (f"Prompt has new field(s) {sorted(unknown)}: name them in PromptPool.key and "
                         "trial_log.demo_rows (and Prompt.identity when they change the request), then add variants here")


@pytest.mark.parametrize("field", ["text", "demos", "retrieval", "demo_chars", "answer_shapes"])
def test_prompts_that_differ_in_one_field_are_other_candidates_in_memory_and_in_the_records(variants, field):
    prompts = variants[field]
    assert len({PromptPool.key(p) for p in prompts}) == len(prompts), "PromptPool.key merges two candidates"
    assert len({_persisted_key(p) for p in prompts}) == len(prompts), "the trial record's key merges two candidates"
    answer_keys = {repr(sorted(p.identity().items())) for p in prompts}
    assert len(answer_keys) == (len(prompts) if field in CHANGES_THE_REQUEST else 1)


def test_who_wrote_a_prompt_does_not_make_it_another_candidate(variants):
    from prompt_opt_api import Provenance

    prompt = variants["answer_shapes"][-1]
    other = dataclasses.replace(prompt, provenance=Provenance(kind="manual", author="someone"))
    assert PromptPool.key(other) == PromptPool.key(prompt) and _persisted_key(other) == _persisted_key(prompt)
