"""Exceptions every layer may raise or catch; the engine decides what each one means.

* ``TaskError``: bad input (CSV, images, pair selection). The run stops before any
  model is loaded, naming the file and rows.
* ``EndpointUnusable``: an answer model or advisor that cannot be used at all (a
  rejected key, an unknown model); ``EndpointUnreachable``, its subclass, one that
  cannot be reached. The run stops at once with one line naming the URL or key
  variable and what to do: every later pair would fail the same way.
* ``BudgetExhausted``: the pair's answer-model budget is spent; the optimizer keeps
  what it has.
* ``HeldOutAccessError``: an optimizer reached for examples it may not score.
* ``PromptTooLong``: a prompt (its text, or a provenance field) is larger than the engine
  accepts (``prompt_opt_api.MAX_PROMPT_CHARS``); refused before anything is charged.
* ``AdvisorError``: the advisor gave no usable reply after retries. Optimizers count
  it as a failed proposal and go on; if one escapes, that pair fails, the run goes on.
* ``AdvisorBudgetExhausted``: the run's advisor budget (calls or dollars) is spent;
  optimizers finish with what they have.

Any other exception raised while one pair is optimized (a model error, a context
overflow) fails that pair only; the run goes on to the next one.
"""

from __future__ import annotations


class TaskError(ValueError):
    """A task file or pair selection is unusable; the message names the file and rows."""


class EndpointUnusable(RuntimeError):
    """A model or advisor endpoint cannot be used at all (bad key, unknown model); the message says the fix."""


class EndpointUnreachable(EndpointUnusable):
    """A model or advisor endpoint cannot be reached; the message names the URL and the fix."""


class BudgetExhausted(RuntimeError):
    """The pair's answer-model budget cannot pay for the requested scoring.

    Nothing was scored by the call that raised it. Optimizers may let it propagate (the
    run loop keeps every score already made) or catch it and return what they have.
    """


class HeldOutAccessError(RuntimeError):
    """An optimizer asked to score examples outside its pair's train and val splits."""


class PromptTooLong(ValueError):
    """A prompt's text (over ``MAX_PROMPT_CHARS``) or a provenance field (over
    ``MAX_PROVENANCE_CHARS``, or a chain of parents deeper than ``MAX_PROVENANCE_DEPTH``) is
    larger than the engine scores, stores or records; nothing was charged."""


class AdvisorError(RuntimeError):
    """The advisor could not give a usable reply (after retries)."""


class AdvisorBudgetExhausted(AdvisorError):
    """The run's advisor budget (calls or dollars) cannot pay for another call."""
