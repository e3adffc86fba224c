"""A runtime check of values against the typed contract (``TypedDict``, ``Literal``, unions).

``conforms(value, annotation)`` returns the list of places where ``value`` breaks the type:
empty means it conforms. With ``json=True`` the value is what a browser would get after
``JSON.parse``: tuples are lists and integer dictionary keys are strings.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, NotRequired, Required, Union, get_args, get_origin


def _is_typeddict(annotation: Any) -> bool:
    return isinstance(annotation, type) and hasattr(annotation, "__required_keys__")


def conforms(value: Any, annotation: Any, *, json: bool = False, path: str = "$") -> list[str]:
    if annotation is Any:
        return []
    if annotation is None or annotation is type(None):
        return [] if value is None else [f"{path}: expected null, got {value!r:.60}"]
    origin = get_origin(annotation)
    if origin in (NotRequired, Required):
        return conforms(value, get_args(annotation)[0], json=json, path=path)
    if origin is Literal:
        allowed = get_args(annotation)
        return [] if value in allowed else [f"{path}: {value!r:.60} not one of {allowed}"]
    if origin in (Union, types.UnionType):
        options = get_args(annotation)
        failures = [conforms(value, o, json=json, path=path) for o in options]
        if any(not f for f in failures):
            return []
        return [f"{path}: {value!r:.60} matches none of {options}"]
    if _is_typeddict(annotation):
        return _typeddict(value, annotation, json=json, path=path)
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, list | tuple):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        args = get_args(annotation)
        if not args:
            return []
        item = args[0]
        problems: list[str] = []
        for index, element in enumerate(value):
            problems += conforms(element, item, json=json, path=f"{path}[{index}]")
        return problems
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        args = get_args(annotation)
        if not args:
            return []
        key_type, value_type = args
        problems = []
        for key, element in value.items():
            if key_type is int and json:
                if not (isinstance(key, str) and key.lstrip("-").isdigit()):
                    problems.append(f"{path}: key {key!r} is not an integer")
            else:
                problems += conforms(key, key_type, json=json, path=f"{path}.<key>")
            problems += conforms(element, value_type, json=json, path=f"{path}[{key!r}]")
        return problems
    if annotation is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected a number, got {value!r:.60}"]
    if annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected an integer, got {value!r:.60}"]
    if annotation in (str, bool):
        ok = isinstance(value, annotation)
        return [] if ok else [f"{path}: expected {annotation.__name__}, got {value!r:.60}"]
    if annotation is object:
        return []
    raise TypeError(f"{path}: the contract checker does not know {annotation!r}")


def _typeddict(value: Any, annotation: Any, *, json: bool, path: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: expected {annotation.__name__}, got {type(value).__name__}"]
    hints = typing.get_type_hints(annotation, include_extras=True)
    problems: list[str] = []
    missing = set(annotation.__required_keys__) - set(value)
    extra = set(value) - set(hints)
    if missing:
        problems.append(f"{path}: {annotation.__name__} lacks {sorted(missing)}")
    if extra:
        problems.append(f"{path}: {annotation.__name__} has unknown {sorted(extra)}")
    for key, hint in hints.items():
        if key in value:
            problems += conforms(value[key], hint, json=json, path=f"{path}.{key}")
    return problems
