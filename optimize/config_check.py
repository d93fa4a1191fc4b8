"""The composed configuration, checked before anything is loaded: types, ranges, fractions, unknown keys.

Hydra composes whatever it is given, ``budget.evaluations_per_pair=-5`` or ``split.train=0.9
split.val=0.5`` included; this check refuses them. The engine's own settings are checked against ``ENGINE_SCHEMA``
(type, range, the keys a section may hold); each group that names a ``_target_`` (task,
model, optimizer, advisor, and nested ones such as a panel's members or a chain's steps)
against its target's signature: no key it does not take, and a value of the type its
annotation names, where that is a plain type. Every problem is listed at once, each naming
the key as an override is written (``budget.evaluations_per_pair=-5``); the entry point
exits 2, as for any bad input. A plugin's own range rules stay in its ``__init__``. An
optimizer's ``optimize`` is checked against the contract here too
(``prompt_opt_api.signature_problem``): a plugin that would fail every pair fails once.
"""

from __future__ import annotations

import collections.abc
import difflib
import importlib
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prompt_opt_api import Optimizer, TaskError, signature_problem
from prompt_opt_api.metric import MIN_CLIP_AT

_MISSING = object()


class ConfigError(TaskError):
    """The configuration has bad values or unknown keys; the message lists every one."""


@dataclass(frozen=True)
class Setting:
    """One engine setting: what it must be.

    Attributes:
        kind: ``int``, ``float`` (ints accepted), ``bool``, ``str`` or ``list[str]``.
        nullable: Whether ``null`` is allowed.
        minimum: Smallest value allowed (numbers).
        above: Values must be strictly greater than this (numbers).
        below: Values must be strictly less than this (numbers).
        choices: The only values allowed.
        why: Why the bounds are what they are (said with a value out of them).
    """

    kind: str
    nullable: bool = False
    minimum: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[Any, ...] = ()
    why: str = ""

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value``, or None."""
        if value is None:
            return None if self.nullable else f"must be {self.describe()}, not null"
        if not _is_kind(value, self.kind):
            return f"must be {self.describe()}, not {type(value).__name__} {value!r}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}"
        if self.kind in ("int", "float"):
            if isinstance(value, float) and not math.isfinite(value):
                return f"must be a finite number, not {value}"
            if (self.minimum is not None and value < self.minimum) or (self.above is not None and value <= self.above) \
                    or (self.below is not None and value >= self.below):
                return f"must be {self.describe()}" + (f" ({self.why})" if self.why else "")
        return None

    def describe(self) -> str:
        words = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string",
                 "list[str]": "a list of strings"}[self.kind]
        bounds = [f">= {self.minimum:g}" if self.minimum is not None else "",
                  f"> {self.above:g}" if self.above is not None else "",
                  f"< {self.below:g}" if self.below is not None else ""]
        text = " ".join([words, " and ".join(b for b in bounds if b)]).strip()
        return f"{text} or null" if self.nullable else text


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)  # list[str]


# The engine's settings (conf/config.yaml). A nested dict is a section: only these keys.
# Groups with a ``_target_`` (task, model, optimizer, advisor) are checked against their
# target; ``split`` and ``metric`` are both: a target, and settings the engine relies on.
ENGINE_SCHEMA: dict[str, Any] = {
    "pairs": Setting("list[str]"),
    "prompts": {"manual": Setting("list[str]")},
    "budget": {
        "evaluations_per_pair": Setting("int", nullable=True, minimum=1),
        "advisor_calls": Setting("int", nullable=True, minimum=0),
        "advisor_usd": Setting("float", nullable=True, minimum=0),
    },
    "batch_size": Setting("int", nullable=True, minimum=1),
    "split": {"train": Setting("float", minimum=0, below=1), "val": Setting("float", above=0, below=1),
              "seed": Setting("int"), "near_duplicate_cosine": Setting("float", nullable=True, above=0, below=1)},
    "metric": {"casefold": Setting("bool"), "clip_at": Setting(
        "float", nullable=True, minimum=MIN_CLIP_AT,
        why="an empty answer scores 1; a lower cap scores wrong answers better than none")},
    "paths": {"store": Setting("str"), "results_dir": Setting("str", nullable=True), "models": Setting("str")},
    "lease_wait_s": Setting("float", nullable=True, minimum=0),
    "progress": Setting("bool", nullable=True),
    "progress_every_s": Setting("float", above=0),
    "plan": Setting("bool"),
    "report": Setting("bool"),
    "fit_answer_cap": Setting("bool"),
    "task": {"on_bad_row": Setting("str", choices=("error", "skip")), "max_answer_chars": Setting("int", minimum=1)},
}
TARGET_GROUPS = ("task", "model", "optimizer", "advisor", "split", "metric")
# Keys Hydra itself reads in a node; never a target's parameter.
_HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


def check_config(cfg: Any) -> None:
    """Check the composed configuration (a DictConfig); raise ``ConfigError`` listing every problem."""
    problems: list[str] = []
    values = _plain(cfg, "", problems)
    if isinstance(values, dict):
        values.pop("hydra", None)  # Hydra's own node (present when composed with return_hydra_config)
        _check_section(values, ENGINE_SCHEMA, "", problems, top=True)
        split = values.get("split") or {}
        train, val = split.get("train"), split.get("val")
        if _is_kind(train, "float") and _is_kind(val, "float") and train + val >= 1:
            problems.append(f"split.train={train} split.val={val}: train + val is {train + val:g}; it must be below 1 "
                            "(the test split gets the rest)")
        for group in TARGET_GROUPS:
            node = values.get(group)
            if isinstance(node, dict):
                _check_targets(node, group, problems)
    if problems:
        raise ConfigError("bad configuration (fix the override or the YAML named):\n  " + "\n  ".join(problems))


def _plain(node: Any, where: str, problems: list[str]) -> Any:
    """``node`` as plain Python values, each interpolation resolved; a key that cannot be
    resolved (a missing ``???`` value, a bad interpolation) is a problem and left out."""
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(node, DictConfig):
        out = {}
        for key in node.keys():
            name = f"{where}.{key}" if where else str(key)
            try:
                child = node[key]
            except OmegaConfBaseException as err:
                if OmegaConf.is_missing(node, key):
                    problems.append(f"{name}: no value given (pass {name}=...)")
                else:
                    problems.append(f"{name}: cannot be resolved ({type(err).__name__}: {str(err).splitlines()[0]})")
                continue
            out[str(key)] = _plain(child, name, problems)
        return out
    if isinstance(node, ListConfig):
        try:
            return OmegaConf.to_container(node, resolve=True)
        except OmegaConfBaseException as err:
            problems.append(f"{where}: cannot be resolved ({type(err).__name__}: {str(err).splitlines()[0]})")
            return []
    return node


def _check_section(values: dict[str, Any], schema: dict[str, Any], where: str, problems: list[str],
                   top: bool = False) -> None:
    for key, rule in schema.items():
        name = f"{where}.{key}" if where else key
        value = values.get(key, _MISSING)
        if isinstance(rule, dict):
            if isinstance(value, dict):
                _check_section(value, rule, name, problems)
            elif value is not _MISSING:
                problems.append(f"{name}: must be a section of settings ({', '.join(rule)}), not {value!r}")
            continue
        if value is _MISSING:
            continue  # a default in code applies (e.g. a test config without it)
        problem = rule.problem(value)
        if problem:
            problems.append(f"{name}={_shown(value)}: {problem}")
    if top:  # the top level also holds the target groups
        for key in values:
            if key not in schema and key not in TARGET_GROUPS:
                problems.append(_unknown(key, key, list(dict.fromkeys([*schema, *TARGET_GROUPS]))))
        return
    if "_target_" in values:
        return  # a target's section: its signature decides which keys it takes
    for key in values:
        if key not in schema:
            problems.append(_unknown(f"{where}.{key}", key, list(schema)))


def _check_targets(node: dict[str, Any], where: str, problems: list[str]) -> None:
    """Check every node with a ``_target_`` under ``node`` against its target's signature."""
    target = node.get("_target_")
    if isinstance(target, str):
        _check_target(node, target, where, problems)
    for key, value in node.items():
        if isinstance(value, dict):
            _check_targets(value, f"{where}.{key}", problems)


def _check_target(node: dict[str, Any], target: str, where: str, problems: list[str]) -> None:
    obj = _locate(target)
    if obj is None:
        problems.append(f"{where}._target_={target}: no such class or function")
        return
    if inspect.isclass(obj) and issubclass(obj, Optimizer) and signature_problem(obj):
        problems.append(f"{where}._target_={target}: {signature_problem(obj)}")
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return
    params, hints, open_ended = _keywords(obj, signature)
    for key, value in node.items():
        if key in _HYDRA_KEYS:
            continue
        name = f"{where}.{key}"
        if key not in params:
            if not open_ended:
                problems.append(_unknown(name, key, [p for p in params if p != "self"], f" of {target}"))
            continue
        if isinstance(ENGINE_SCHEMA.get(where), dict) and key in ENGINE_SCHEMA[where]:
            continue  # the engine's own rule for it was checked already
        expected = hints.get(key)
        if expected is not None and _accepts(expected, value) is False:
            problems.append(f"{name}={_shown(value)}: {target} takes {_type_name(expected)}, "
                            f"not {type(value).__name__}")


def _locate(target: str) -> Callable[..., Any] | None:
    module_name, _, attr = target.rpartition(".")
    while module_name:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module_name, _, head = module_name.rpartition(".")
            attr = f"{head}.{attr}"
            continue
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj if callable(obj) else None
    return None


def _keywords(obj: Any, signature: inspect.Signature) -> tuple[list[str], dict[str, Any], bool]:
    """The keywords ``obj`` takes, their annotations as types, and whether it takes any other.

    ``**kwargs: Unpack[SomeTypedDict]`` takes exactly that TypedDict's keys, with its
    annotations (``optimizers.pool_optimizer.PoolOptions``); a bare ``**kwargs`` takes any key.
    """
    params = signature.parameters
    hints = _hints(obj, params)
    names = [name for name, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    open_ended = False
    for name, param in params.items():
        if param.kind is not inspect.Parameter.VAR_KEYWORD:
            continue
        typed = _unpacked(hints.pop(name, None))
        if typed is None:
            open_ended = True
            continue
        names += [key for key in typed if key not in names]
        hints.update({key: hint for key, hint in typed.items() if key not in hints})
    return names, hints, open_ended


def _unpacked(annotation: Any) -> dict[str, Any] | None:
    """The keys and annotations of ``Unpack[SomeTypedDict]``; None for anything else."""
    if typing.get_origin(annotation) is not typing.Unpack:
        return None
    (typed,) = typing.get_args(annotation)
    if not typing.is_typeddict(typed):
        return None
    try:
        return typing.get_type_hints(typed)
    except Exception:  # noqa: BLE001 - a forward reference: its keys are known, their types not checked
        return dict.fromkeys(typed.__annotations__, Any)


def _hints(obj: Any, params: collections.abc.Mapping[str, inspect.Parameter]) -> dict[str, Any]:
    """The parameters' annotations as types, where each can be evaluated (others are left unchecked)."""
    function = obj.__init__ if inspect.isclass(obj) else obj
    module = inspect.getmodule(function) or inspect.getmodule(obj)
    namespace = {**vars(typing), **(vars(module) if module else {})}
    out = {}
    for name, param in params.items():
        annotation = param.annotation
        if annotation is inspect.Parameter.empty:
            continue
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)  # noqa: S307 - our own modules' annotations
            except Exception:  # noqa: BLE001 - a forward reference (TYPE_CHECKING): not checked
                continue
        out[name] = annotation
    return out


def _accepts(expected: Any, value: Any) -> bool | None:
    """Whether ``value`` fits ``expected``: True, False, or None when the annotation is not a plain type."""
    if expected is Any or expected is inspect.Parameter.empty:
        return None
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        verdicts = [_accepts(arg, value) for arg in typing.get_args(expected)]
        return True if True in verdicts else (None if None in verdicts else False)
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is str:
        return isinstance(value, str)
    sequence_types = (list, tuple, collections.abc.Sequence)
    if expected in sequence_types or origin in sequence_types:
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(expected) if a is not Ellipsis]
        if len(args) == 1:
            verdicts = {_accepts(args[0], v) for v in value}
            return False if False in verdicts else (None if None in verdicts else True)
        return True
    mapping_types = (dict, collections.abc.Mapping)
    if expected in mapping_types or origin in mapping_types:
        return isinstance(value, dict)
    return None  # a class (an advisor, a model spec): built by Hydra from its own node


def _type_name(expected: Any) -> str:
    if typing.get_args(expected) or not hasattr(expected, "__name__"):
        return str(expected).replace("typing.", "").replace("collections.abc.", "")
    return expected.__name__


def _unknown(name: str, key: str, known: list[str], of: str = "") -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{name}: unknown setting{of}{hint}; known: {', '.join(known) or 'none'}"


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
