"""What the engine tells a plugin's author: where a pair failed and whether running again can
help, why a split cannot be scored, and a winning template that ignores the question.

A pair fails on an exception from one of three places, told apart by the traceback:

* the answer model or the advisor (a frame in its class's module, or an ``AdvisorError``): a
  timeout, a server error or an unusable reply may pass, so the line says to re-run the same
  command to retry it;
* the optimizer's own code (a frame in its package, or in its module when it has none): a
  bug, so the line names the plugin's file, line and code, the last frame of it in the
  traceback, and says to fix it; running again unchanged would fail the same way;
* elsewhere: the last frame is named.

The whole traceback is logged at DEBUG level (``hydra.verbose=optimize``).
"""

from __future__ import annotations

import inspect
import logging
import os
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompt_opt_api import QUESTION_PLACEHOLDER, AdvisorError, Example, Pair, Prompt

log = logging.getLogger(__name__)

_API = Path(inspect.getfile(Prompt)).resolve().parent  # prompt_opt_api: the contracts, never the culprit
MAX_REASON = 500


@dataclass(frozen=True)
class PairFailure:
    """Why one pair failed, as its row and the log say it.

    Attributes:
        reason: ``Type: message``, one line.
        source: Who raised it: ``optimizer suffix_search``, ``answer model Scripted-VLM``,
            ``advisor GPT4o`` or ``engine``.
        where: ``file:line in function`` of the frame that matters (empty when unknown).
        code: That frame's source line.
        retry: Whether running the same command again may fix it (a model or advisor failure).
    """

    reason: str
    source: str
    where: str = ""
    code: str = ""
    retry: bool = False

    @property
    def status(self) -> str:
        """The row's status after ``failed: ``: the reason, and where a bug is (a retry cannot fix one)."""
        return self.reason if self.retry or not self.where else f"{self.reason} ({self.source} at {self.where})"

    def log_line(self, pair_key: str) -> str:
        at = f" at {self.where}" + (f": `{self.code}`" if self.code else "") if self.where else ""
        if self.retry:
            return (f"pair {pair_key!r} failed: {self.reason}; from the {self.source}{at} "
                    "(the run goes on; re-run the same command to retry it)")
        if self.source.startswith("optimizer "):
            return (f"pair {pair_key!r} failed: {self.reason}; a bug in the {self.source}{at}: fix it and run the "
                    "same command again, finished pairs are kept (the run goes on)")
        return f"pair {pair_key!r} failed: {self.reason}; in the {self.source}{at} (the run goes on)"


def log_pair_failure(pair_key: str, err: BaseException, parts: Any) -> str:
    """Log why ``pair_key`` failed with ``err`` (``parts``: the run's ``RunParts``); the row's status text."""
    try:
        failure = describe_failure(err, parts.optimizer, parts.model, parts.advisor)
    except Exception:  # noqa: BLE001 - describing a failure must not fail the run: the plain reason
        failure = PairFailure(f"{type(err).__name__}: {err}".replace("\n", " ")[:MAX_REASON], "engine")
    log.error("%s", failure.log_line(pair_key))
    log.debug("pair %r: the traceback", pair_key, exc_info=(type(err), err, err.__traceback__))
    return failure.status


def describe_failure(err: BaseException, optimizer: Any, model: Any, advisor: Any) -> PairFailure:
    """Who raised ``err`` while a pair ran, where, and whether a retry may help."""
    reason = f"{type(err).__name__}: {err}".replace("\n", " ")[:MAX_REASON]
    frames = traceback.extract_tb(err.__traceback__)
    advisor_frame = _last_in(frames, _files(_advisor_classes(advisor)))
    if isinstance(err, AdvisorError) or advisor_frame is not None:
        return PairFailure(reason, f"advisor {getattr(advisor, 'name', '') or '?'}", _at(advisor_frame), retry=True)
    model_frame = _last_in(frames, _files([type(model)]))
    if model_frame is not None:
        return PairFailure(reason, f"answer model {getattr(model, 'name', '?')}", _at(model_frame), retry=True)
    plugin_frame = _last_in(frames, _plugin_files(type(optimizer), frames))
    if plugin_frame is not None:
        return PairFailure(reason, f"optimizer {getattr(optimizer, 'name', '?')}", _at(plugin_frame),
                           (plugin_frame.line or "").strip())
    return PairFailure(reason, "engine", _at(frames[-1] if frames else None))


def _advisor_classes(advisor: Any) -> list[type]:
    """The classes of the advisor the session wraps, and of a panel's members."""
    if advisor is None:
        return []
    inner = getattr(advisor, "inner", advisor)
    return [type(inner), *(type(getattr(m, "inner", m)) for m in inner.members())]


def _files(classes: Iterable[type]) -> set[Path]:
    """The source files of ``classes`` and their bases, the contracts left out."""
    out = set()
    for cls in classes:
        for base in cls.__mro__:
            path = _source(base)
            if path is not None and path.parent != _API:
                out.add(path)
    return out


def _plugin_files(cls: type, frames: Sequence[traceback.FrameSummary]) -> set[Path]:
    """The optimizer's own files: every module of its package (a chain's steps, shared helpers),
    or its class's module and bases when it is in no package."""
    own = _files([cls])
    package = _source(cls)
    if package is None or not (package.parent / "__init__.py").is_file():
        return own
    return own | {Path(f.filename).resolve() for f in frames if Path(f.filename).resolve().parent == package.parent}


def _source(cls: type) -> Path | None:
    try:
        return Path(inspect.getfile(cls)).resolve()
    except (TypeError, OSError):  # a built-in
        return None


def _last_in(frames: Sequence[traceback.FrameSummary], files: set[Path]) -> traceback.FrameSummary | None:
    """The deepest frame in one of ``files``."""
    for frame in reversed(frames):
        if Path(frame.filename).resolve() in files:
            return frame
    return None


def _at(frame: traceback.FrameSummary | None) -> str:
    if frame is None:
        return ""
    path = Path(frame.filename).resolve()
    try:
        shown = os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)
    except (ValueError, OSError):  # another drive; no working directory
        shown = str(path)
    return f"{shown}:{frame.lineno} in {frame.name}"


# -- scoring no examples --------------------------------------------------------------------------

class HeldOutTest(tuple):
    """The test split in the pair an optimizer is given: empty by design, and told apart from an
    empty list so that scoring it says why."""

    __slots__ = ()


HELD_OUT_TEST = HeldOutTest()


def no_examples_message(examples: Sequence[Example]) -> str:
    """Why ``evaluator.score`` refuses ``examples`` (empty): the held-out test split, or an empty list."""
    if isinstance(examples, HeldOutTest):
        return ("cannot score on pair.test: the test split is held out by design (empty for optimizers; the "
                "engine scores the winner on it once): score on pair.val to compete, or on pair.train")
    return ("cannot score a prompt on zero examples: the examples given are empty (score on pair.val to "
            "compete, or on a non-empty part of pair.train or pair.val)")


# -- the winner's template ------------------------------------------------------------------------

def winner_note(pair: Pair, prompt: Prompt) -> str:
    """``"; <note>"`` for the pair's status, logged as a warning, when the winning template has no
    ``{question}`` (every example then gets the same text, whatever its question asks); else ``""``."""
    if QUESTION_PLACEHOLDER in prompt.text:
        return ""
    phrasings = len(pair.questions)
    note = (f"the winning prompt has no {QUESTION_PLACEHOLDER}: it sends the same text whatever each example's "
            f"question asks ({phrasings} question phrasing{'s' if phrasings != 1 else ''} on train/val)")
    log.warning("pair %r: %s", pair.key, note)
    return f"; {note}"
