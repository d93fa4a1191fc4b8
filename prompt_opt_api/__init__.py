"""The contracts every other package of ours imports, and that import nothing of ours.

Like lm-evaluation-harness's ``lm_eval/api``: value types (``Example``, ``Prompt``,
``Pair``, ``Score``, ``Trial``, ``Provenance``), the plugin contracts (``AnswerModel``, ``Optimizer``,
``PromptEvaluator``, ``Advisor``, ``Metric``, ``DerivedDataCache``), cache keys, the
baseline prompt and the exceptions that cross layers. The engine (``optimize``) and
the plugin packages (``models``, ``optimizers``, ``tasks``) depend on this package and
never on each other; ``tests/test_import_layers.py`` and import-linter keep it so.
"""

from prompt_opt_api.advisor import Advisor, AdvisorCharges, AdvisorReply, AdvisorUsage, Message
from prompt_opt_api.answer_model import AnswerModel, reads_text
from prompt_opt_api.cache import DerivedDataCache, cache_key
from prompt_opt_api.data import (
    ADVISOR_KINDS,
    DATASET_QUESTION,
    FULL_VAL,
    MANUAL,
    MAX_PROMPT_CHARS,
    MAX_PROVENANCE_CHARS,
    MAX_PROVENANCE_DEPTH,
    PROVENANCE_KINDS,
    QUESTION_PLACEHOLDER,
    SPLIT_LABELS,
    Example,
    ExampleResult,
    Pair,
    Prompt,
    Provenance,
    Score,
    Trial,
    baseline_prompt,
    derived_provenance,
    manual_prompts,
    pair_key,
)
from prompt_opt_api.errors import (
    AdvisorBudgetExhausted,
    AdvisorError,
    BudgetExhausted,
    EndpointUnreachable,
    EndpointUnusable,
    HeldOutAccessError,
    PromptTooLong,
    TaskError,
)
from prompt_opt_api.metric import Metric, mean
from prompt_opt_api.optimizer import BudgetView, Optimizer, PromptEvaluator, signature_problem

__all__ = [
    "ADVISOR_KINDS", "DATASET_QUESTION", "FULL_VAL", "MANUAL", "MAX_PROMPT_CHARS", "MAX_PROVENANCE_CHARS",
    "MAX_PROVENANCE_DEPTH", "PROVENANCE_KINDS", "QUESTION_PLACEHOLDER",
    "SPLIT_LABELS", "Advisor", "AdvisorBudgetExhausted", "AdvisorCharges", "AdvisorError", "AdvisorReply",
    "AdvisorUsage", "AnswerModel", "BudgetExhausted", "BudgetView", "DerivedDataCache", "EndpointUnreachable",
    "EndpointUnusable", "Example", "ExampleResult", "HeldOutAccessError", "Message", "Metric", "Optimizer", "Pair",
    "Prompt", "PromptEvaluator", "PromptTooLong", "Provenance", "Score", "TaskError", "Trial", "baseline_prompt",
    "cache_key", "derived_provenance", "manual_prompts", "mean", "pair_key", "reads_text", "signature_problem",
]
