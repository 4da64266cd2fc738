"""Pydantic's validation errors in an installer's words: did you mean, how to write a number, names in words.

Kept apart from ``edge/config.py`` (the models) so that file stays the list of keys;
``describe_error`` there picks the phrase, these helpers find the words.
"""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

NAME_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"  # camera, zone and line names: they travel in every event
NODE_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"  # a topic level: no / + # or NUL


def pattern_words(error: Any) -> str:
    """What a name or id may hold, in words instead of a regular expression."""
    pattern = (error.get("ctx") or {}).get("pattern", "")
    if pattern == NAME_PATTERN:
        return "use 1-32 letters, digits, '_' or '-'"
    if pattern == NODE_ID_PATTERN:
        return "use 1-64 letters, digits, '.', '_' or '-' (it is a level of every MQTT topic)"
    if "\\x00" in pattern or "\x00" in pattern:
        return "must not hold control characters (NUL, tab, newline)"
    return error["msg"]


def quoted_hint(kind: str, value: Any) -> str:
    """Strict types: a number or boolean written in quotes is text; say how to write it instead."""
    if not isinstance(value, str):
        return ""
    if kind in ("int_type", "float_type"):
        try:
            float(value)
        except ValueError:
            return ""
        return f"it is text, not a number: write it without quotes ({value.strip()})"
    if kind == "bool_type" and value.strip().lower() in ("true", "false"):
        return f"it is text, not a boolean: write it without quotes ({value.strip().lower()})"
    return ""


def did_you_mean(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    """`` (did you mean `detect_fps`?)`` for a key close to one the section knows, else ""."""
    if model is None or not loc or not isinstance(loc[-1], str):
        return ""
    known = _keys_at(model, loc[:-1])
    close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at ``loc`` accepts, following model fields and ``dict[str, Section]`` values."""
    ann: Any = model
    for part in loc:
        ann = _section_type(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            field = ann.model_fields.get(str(part))
            if field is None:
                return []
            ann = field.annotation
        elif get_origin(ann) is dict:
            ann = get_args(ann)[1]
        else:
            return []
    ann = _section_type(ann)
    return list(ann.model_fields) if isinstance(ann, type) and issubclass(ann, BaseModel) else []


def _section_type(ann: Any) -> Any:
    """Strip ``Annotated[...]`` and ``X | None`` down to the type inside."""
    while get_origin(ann) is Annotated:
        ann = get_args(ann)[0]
    if get_origin(ann) in (Union, types.UnionType):
        inner = [a for a in get_args(ann) if a is not type(None)]
        return _section_type(inner[0]) if len(inner) == 1 else ann
    return ann
