"""Walks over what an object leads to, for tests that show what a plugin can or cannot reach."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

_CONTAINERS = (list, tuple, set, frozenset)


def walk(root: Any, children: Callable[[Any], Iterable[Any]], depth: int = 6) -> Iterator[Any]:
    """Every object met within ``depth`` steps of ``root``, breadth first, each once (by identity);
    ``children(obj)`` is what ``obj`` leads to (nothing for an object not to look into). None is
    never met; every object met is held until the walk ends, so that no other takes its identity."""
    seen: dict[int, Any] = {}
    frontier = [root]
    for _ in range(depth):
        nxt = []
        for obj in frontier:
            if obj is None or id(obj) in seen:
                continue
            seen[id(obj)] = obj
            yield obj
            nxt += children(obj)
        frontier = nxt


def held_parts(obj: Any) -> list[Any]:
    """What any code holding ``obj`` can reach: a container's items, a dict's keys and values,
    slots and ``__dict__`` attributes (private ones too), a function's closure, a bound method's
    owner and function; nothing for a scalar, a type or a module."""
    if isinstance(obj, (str, bytes, int, float, type, types.ModuleType)):
        return []
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, _CONTAINERS):
        return list(obj)
    slots = [s for cls in type(obj).__mro__ for s in getattr(cls, "__slots__", ())]
    parts = [getattr(obj, s) for s in slots if hasattr(obj, s)] + list(getattr(obj, "__dict__", {}).values())
    if isinstance(obj, types.FunctionType):
        parts += [cell.cell_contents for cell in obj.__closure__ or () if _filled(cell)]
    return parts + [getattr(obj, a) for a in ("__self__", "__func__", "__wrapped__") if hasattr(obj, a)]


def public_parts(obj: Any) -> list[Any]:
    """What a plausible plugin reads from ``obj``: a container's items, a dict's keys and values,
    its public attributes and properties (one that raises is not reachable) and what its
    ``members()`` returns; nothing for a string, path, scalar or type."""
    if isinstance(obj, (str, Path, int, float, bytes, type)):
        return []
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, _CONTAINERS):
        return list(obj)
    parts = []
    for name in dir(obj):
        if name.startswith("_"):
            continue
        try:
            value = getattr(obj, name)
        except Exception:  # noqa: BLE001 - a property that refuses is not reachable
            continue
        if callable(value) and name == "members":
            value = value()
        if not callable(value):
            parts.append(value)
    return parts


def _filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True
