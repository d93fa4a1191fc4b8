"""Applying a prompt book someone else wrote: what the book decides and what only its user does.

A book is data, like a CSV. Applying one (``optimize.apply``, ``models.prompt_runtime``):

* builds only the answer-model, metric, split and task-loader components that the project's
  config registers (``conf/model/*.yaml``, ``conf/task/*.yaml``, ``conf/config.yaml``'s
  ``split`` and ``metric``), or classes of their kind under a module prefix the user allows;
  never another callable;
* takes every ``LOCATION_KEYS`` setting (endpoint, key variable, weights folder, file and
  fetch sources, data folder) from the user: their config of that class and their overrides.
  A book that sets one is refused; its nested components (an ``ocr_llm``'s weights) must be
  the user's config's own;
* refuses a metric ``clip_at`` that is not null or at least ``MIN_CLIP_AT``;
* refuses an entry that cuts its demo pages (``demo_chars``) for an answer model that does not
  cut them (``AnswerModel.cuts_demo_text``): its requests would carry whole pages, not the
  prompt the book reports;
* refuses a book whose content does not match its ``content_sha256``, or that has none
  (written before version 4), unless the user trusts it. The hash is not a signature (its
  author can recompute it); it shows a book is as it was written.

Each refusal is a ``PromptBookError`` naming the book and the key.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_opt_api.answer_model import AnswerModel
from prompt_opt_api.errors import TaskError
from prompt_opt_api.metric import MIN_CLIP_AT
from prompt_opt_api.prompt_book import LOCATION_KEYS, BookEntry, PromptBook, PromptBookError, without_locations

log = logging.getLogger(__name__)

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
ANSWER_MODEL, METRIC, SPLIT, TASK_LOADER = "answer model", "metric", "split", "task loader"
DEFAULT_LOADER = {"_target_": "tasks.docqa_csv.load_task"}
_HYDRA_KEYS = {"_target_", "_convert_"}


@dataclass(frozen=True)
class UserChoices:
    """What the user who applies a book decides; a book never does.

    Attributes:
        model: Answer-model settings over the book's and the config's (nested mapping), e.g.
            ``{"api_base": "http://gpu:8000/v1"}``.
        split: Split settings over the config's (``--split test`` re-makes the test split with them).
        allow: Module prefixes whose classes (of the right kind) a book may name besides the registered ones.
        trust: Apply a book whose content does not match its ``content_sha256`` or that has none.
        conf_dir: The config whose groups register components and give their settings.
    """

    model: Mapping[str, Any] = field(default_factory=dict)
    split: Mapping[str, Any] = field(default_factory=dict)
    allow: tuple[str, ...] = ()
    trust: bool = False
    conf_dir: Path = CONF_DIR


def check_content(book: PromptBook, trust: bool) -> str | None:
    """Refuse a book not as written (unless ``trust``); returns the problem a trusted one has, to log.

    Raises:
        PromptBookError: no ``content_sha256`` (a book before version 4), or one that does not match.
    """
    if book.schema_version < 4:
        problem = (f"{book.where}: schema_version {book.schema_version} carries no content_sha256 (written by an "
                   "earlier version): rebuild it (`python -m optimize.collect RESULTS_DIR` rewrites a task folder's "
                   "books) or pass --trust to apply it as it is")
    elif book.content_sha256 != book.read_sha256:
        problem = (f"{book.where}: content_sha256 does not match the book's settings and entries (edited after it "
                   "was written?): pass --trust to apply it as it is")
    else:
        return None
    if not trust:
        raise PromptBookError(problem)
    return problem


def check_metric(config: Mapping[str, Any], where: str) -> None:
    """A metric's ``clip_at`` is null or a number of at least ``MIN_CLIP_AT`` (below it a wrong answer
    scores better than an empty one, down to 0.0000 for answers all wrong).

    Raises:
        PromptBookError: naming ``metric.clip_at``.
    """
    clip = config.get("clip_at")
    if clip is None:
        return
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not math.isfinite(clip) or clip < MIN_CLIP_AT:
        raise PromptBookError(f"{where}: metric.clip_at={clip!r} is not a sane cap (null or a number >= "
                              f"{MIN_CLIP_AT:g}): with it a wrong answer scores below 1; refused")


def check_demo_cut(book: PromptBook, entry: BookEntry, model_config: Mapping[str, Any], user: UserChoices) -> None:
    """An entry that cuts its demo pages needs an answer model that cuts them (module docstring).

    Raises:
        PromptBookError: naming the book, the pair and the key; the model is not built.
    """
    if entry.demo_chars is None:
        return
    where = f"{book.where}, pair {entry.key!r}"
    target = model_config.get("_target_")
    if getattr(check_target(target, ANSWER_MODEL, user, f"{where}, answer model"), "cuts_demo_text", False) is True:
        return
    raise PromptBookError(f"{where}: \"demo_chars\": {entry.demo_chars} cuts each demo page around its answer, but "
                          f"the answer model {target!r} does not cut demo pages (it reads pixels): refused, its "
                          "requests would not be the ones the book was scored with")


def component_config(config: Any, role: str, user: UserChoices, where: str, key: str, *,
                     overrides: Mapping[str, Any] | None = None, legacy: bool = False) -> dict[str, Any]:
    """The settings a book's component is built with: the user's config of its class, the book's
    own settings over it (never a location), ``overrides`` (the user's) over both.

    Args:
        config: The book's ``_target_`` mapping.
        role: ``ANSWER_MODEL``, ``METRIC``, ``SPLIT`` or ``TASK_LOADER``.
        user: The user's choices.
        where: The book, for messages.
        key: Where ``config`` is in the book (``answer_model.config``), for messages.
        overrides: The user's settings of this component.
        legacy: A book before version 4 (applied with ``--trust``): its locations are dropped
            with a warning instead of refused.

    Raises:
        PromptBookError: a target that is not registered or allowed, a location the book sets,
            a nested component that is not the user's config's.
    """
    if not isinstance(config, Mapping):
        raise PromptBookError(f"{where}: {key} must be an object of settings")
    check_target(config.get("_target_"), role, user, f"{where}: {key}._target_")
    base = copy.deepcopy(registry(user.conf_dir)[role].get(config["_target_"], {"_target_": config["_target_"]}))
    mine = _merge(base, overrides or {})
    book = _without_locations(dict(config), where, key, legacy)
    for name, value in book.items():
        if _is_component(value):
            _same_component(value, mine.get(name), where, f"{key}.{name}")
    settings = {k: v for k, v in book.items() if not _is_component(v)}
    return _merge(_merge(base, settings), overrides or {})


def user_split(book_split: Mapping[str, Any], user: UserChoices, where: str) -> dict[str, Any]:
    """The user's split (their config's ``split`` with ``user.split`` over it), which the book's must be.

    Raises:
        PromptBookError: naming the first setting in which the book's split differs.
    """
    check_target(book_split.get("_target_"), SPLIT, user, f"{where}: split._target_")
    (configured,) = registry(user.conf_dir)[SPLIT].values()
    mine = _merge(configured, user.split)
    for name in sorted(set(mine) | set(book_split)):
        if book_split.get(name) != mine.get(name):
            raise PromptBookError(
                f"{where}: split.{name} is {book_split.get(name)!r} where your split has {mine.get(name)!r} "
                f"({user.conf_dir / 'config.yaml'}, --split-setting): --split test scores the pages your runs hold "
                f"out, not ones a book picks; pass --split-setting {name}=... if your run used another")
    return mine


def build(config: Mapping[str, Any], role: str, user: UserChoices, where: str) -> Any:
    """Build a component from settings ``component_config`` made (nested components are the user's).

    Raises:
        PromptBookError: a target outside what is allowed, settings the class refuses (naming it).
    """
    factory = check_target(config.get("_target_"), role, user, where)
    nested = _nested_targets(user.conf_dir)
    kwargs = {k: _build_nested(v, nested, user, where) for k, v in config.items() if k not in _HYDRA_KEYS}
    return _call(factory, config["_target_"], kwargs, where)


def check_target(target: Any, role: str, user: UserChoices, where: str) -> Any:
    """The class (or registered loader) ``target`` names, when it may be built in ``role``.

    Raises:
        PromptBookError: not registered and not under an allowed prefix, or not of the role's kind.
    """
    registered = registry(user.conf_dir)[role]
    allowed = isinstance(target, str) and (target in registered or (
        role != TASK_LOADER and any(target.startswith(prefix) for prefix in user.allow)))
    if not allowed:
        have = ", ".join(sorted(registered)) or "none"
        raise PromptBookError(f"{where}: {target!r} is not a{'n' if role[0] in 'aeiou' else ''} {role} your config "
                              f"registers ({have}; --allow PREFIX adds your own classes); a book names no other code")
    factory = _import(target, where)
    if not _of_kind(factory, role):
        raise PromptBookError(f"{where}: {target!r} is not a{'n' if role[0] in 'aeiou' else ''} {role} class")
    return factory


@functools.cache
def registry(conf_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Per role, the targets the config registers and the user's settings of each (resolved;
    a task's ``csv`` left out): the model and task groups, ``config.yaml``'s split and metric."""
    from omegaconf import OmegaConf

    main = OmegaConf.load(conf_dir / "config.yaml")
    found: dict[str, dict[str, dict[str, Any]]] = {ANSWER_MODEL: {}, TASK_LOADER: {}, METRIC: {}, SPLIT: {}}
    nodes = [(role, OmegaConf.load(path)) for role, group in ((ANSWER_MODEL, "model"), (TASK_LOADER, "task"))
             for path in sorted((conf_dir / group).glob("*.yaml"))]
    for role, node in [*nodes, (SPLIT, main.split), (METRIC, main.metric)]:
        settings = _resolved(OmegaConf.to_container(node), main.get("paths") or {})
        if isinstance(settings.get("_target_"), str):
            found[role].setdefault(settings["_target_"], settings)
    return found


def _resolved(node: dict[str, Any], paths: Any) -> dict[str, Any]:
    """``node`` with ``${paths.*}`` resolved as a run resolves it (a value that cannot be is left out)."""
    from omegaconf import OmegaConf

    node = {k: v for k, v in node.items() if k != "csv"}
    try:
        return OmegaConf.to_container(OmegaConf.create({"paths": paths, "node": node}).node, resolve=True)
    except Exception:  # noqa: BLE001 - a resolver only a run has: the class's own default takes its place
        return {k: v for k, v in node.items() if not (isinstance(v, str) and "${" in v)}


def _nested_targets(conf_dir: Path) -> frozenset[str]:
    """The targets the registered settings build inside a component (e.g. ``ocr_llm``'s weights spec)."""
    found: set[str] = set()

    def walk(node: Any, top: bool) -> None:
        if isinstance(node, dict):
            if not top and isinstance(node.get("_target_"), str):
                found.add(node["_target_"])
            for value in node.values():
                walk(value, False)
        elif isinstance(node, list):
            for value in node:
                walk(value, False)

    for settings in registry(conf_dir).values():
        for node in settings.values():
            walk(node, True)
    return frozenset(found)


def _build_nested(value: Any, nested: frozenset[str], user: UserChoices, where: str) -> Any:
    if isinstance(value, list):
        return [_build_nested(v, nested, user, where) for v in value]
    if not isinstance(value, dict):
        return value
    unknown = sorted(k for k in value if k.startswith("_") and k not in _HYDRA_KEYS)
    if unknown:
        raise PromptBookError(f"{where}: {', '.join(unknown)} not supported in a book's settings")
    kwargs = {k: _build_nested(v, nested, user, where) for k, v in value.items() if k not in _HYDRA_KEYS}
    target = value.get("_target_")
    if target is None:
        return kwargs
    if target not in nested and not any(str(target).startswith(prefix) for prefix in user.allow):
        raise PromptBookError(f"{where}: {target!r} is not a component your config builds")
    return _call(_import(target, where), target, kwargs, where)


def _call(factory: Any, target: str, kwargs: dict[str, Any], where: str) -> Any:
    try:
        return factory(**kwargs)
    except TaskError:
        raise  # bad data: its own message names the file and rows
    except (TypeError, ValueError) as err:
        raise PromptBookError(f"{where}: {target} refused its settings ({err})") from None


def _import(target: str, where: str) -> Any:
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise PromptBookError(f"{where}: cannot import {target!r} ({err})") from None


def _of_kind(factory: Any, role: str) -> bool:
    """An answer-model, metric or split class (a registered task loader is what the config names)."""
    if role == TASK_LOADER:
        return callable(factory)
    if not inspect.isclass(factory):
        return False
    if role == ANSWER_MODEL:
        return issubclass(factory, AnswerModel)
    methods = ("cer", "exact") if role == METRIC else ("split",)
    return all(callable(getattr(factory, m, None)) for m in methods)


def _without_locations(config: dict[str, Any], where: str, key: str, legacy: bool) -> dict[str, Any]:
    """The book's settings; a location in them is refused (dropped with a warning in a ``legacy`` book)."""
    found = _locations(config, key)
    if found and not legacy:
        raise PromptBookError(f"{where}: {', '.join(found)} {'is' if len(found) == 1 else 'are'} set by the book; "
                              "where answers, keys, weights and data come from is yours to set (your config, or "
                              "--model KEY=VALUE), never a book's")
    if found:
        log.warning("%s: %s ignored (an earlier version wrote them): your config and --model settings are used",
                    where, ", ".join(found))
    return without_locations(config)


def _locations(node: Any, key: str) -> list[str]:
    if isinstance(node, dict):
        return [found for name, value in node.items()
                for found in ([f"{key}.{name}"] if name in LOCATION_KEYS else _locations(value, f"{key}.{name}"))]
    if isinstance(node, list):
        return [found for i, value in enumerate(node) for found in _locations(value, f"{key}[{i}]")]
    return []


def _is_component(value: Any) -> bool:
    return isinstance(value, dict) and "_target_" in value


def _same_component(book: dict[str, Any], mine: Any, where: str, key: str) -> None:
    """A book's nested component must be the user's config's (the book may leave settings out)."""
    if not _is_component(mine):
        raise PromptBookError(f"{where}: {key} is a component your config does not have; a book builds none")
    for name, value in book.items():
        if mine.get(name) != value:
            raise PromptBookError(f"{where}: {key}.{name} is {value!r} where your config has {mine.get(name)!r}: "
                                  "the book was made with another one; set it in your config or with --model")


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on ``base``, mappings merged key by key."""
    merged = copy.deepcopy(dict(base))
    for name, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(name), Mapping):
            merged[name] = _merge(merged[name], value)
        else:
            merged[name] = copy.deepcopy(value)
    return merged
