"""Pydantic's validation errors of a description, said in the description's own words.

"input.preprocessing.0: Input should be a valid dictionary or object to extract fields from"
tells an administrator nothing; "input.preprocessing step 1: 'resize' is not a step: write each
step as a mapping with its op and fields, e.g. {op: resize, size: [H, W]}" does. The allowed
fields and ops are read from the models themselves (``Description``, ``InputSpec``, the step
classes), so the messages cannot drift from what is accepted.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

#: An example of each preprocessing op's fields, for messages (the field names are checked
#: against the step classes by the tests; the values are only examples).
STEP_EXAMPLES = {
    "window": "{op: window, center: 40, width: 400}",
    "auto_window": "{op: auto_window, low_percentile: 0.5, high_percentile: 99.5}",
    "scale": "{op: scale, factor: 0.00392}",
    "resize": "{op: resize, size: [224, 224]}",
    "normalize": "{op: normalize, mean: 0.5, std: 0.25}",
    "to_channels": "{op: to_channels, n: 3}",
}
_UNION_TYPES = (typing.Union, types.UnionType)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, list, Annotated, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += [m for m in _models_in(arg) if m not in found]
    return found


def _tag(model: type[BaseModel]) -> str | None:
    """The ``op`` of a preprocessing step class (its discriminator's one literal value)."""
    field = model.model_fields.get("op")
    if field is None:
        return None
    values = typing.get_args(field.annotation)
    return str(values[0]) if values else None


def step_classes() -> dict[str, type[BaseModel]]:
    """op -> step class, from the manifest's ``PreprocessStep`` union."""
    from models.manifest import PreprocessStep

    return {t: m for m in _models_in(PreprocessStep) if (t := _tag(m)) is not None}


def _step_fields(model: type[BaseModel]) -> str:
    fields = [name for name in model.model_fields if name != "op"]
    return ", ".join(fields) if fields else "no fields"


def allowed_ops() -> str:
    """ "window (center, width), auto_window (...), ...": every op with its fields."""
    return ", ".join(f"{op} ({_step_fields(m)})" for op, m in step_classes().items())


def _model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model whose fields ``loc`` points into (list indices skipped, a step's op picked)."""
    current: type[BaseModel] | None = root
    for part in loc:
        if current is None or isinstance(part, int) or part == _tag(current):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return None
        choices = _models_in(field.annotation)
        current = choices[0] if len(choices) == 1 else None
        if len(choices) > 1:  # a discriminated union: the next str part is the tag
            steps = {_tag(m): m for m in choices}
            after = loc[list(loc).index(part) + 1 :]
            tag = next((p for p in after if isinstance(p, str) and p in steps), None)
            current = steps.get(tag) if tag is not None else None
    return current


def _field_home(model: type[BaseModel], name: str) -> str | None:
    """The field of ``model`` whose own model has a field ``name`` ("preprocessing" written
    at the top level belongs under "input")."""
    for field_name, field in model.model_fields.items():
        if any(name in m.model_fields for m in _models_in(field.annotation)):
            return field_name
    return None


def _where(loc: Sequence[int | str]) -> str:
    """ "input.preprocessing step 2 (resize).size" for a location pydantic gives."""
    parts: list[str] = []
    ops = step_classes()
    for i, part in enumerate(loc):
        previous = loc[i - 1] if i else None
        if isinstance(part, int):
            if previous == "preprocessing":
                parts.append(f" step {part + 1}")
            else:
                parts.append(f"[{part + 1}]")
        elif previous is not None and isinstance(previous, int) and part in ops:
            parts.append(f" ({part})")
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts) or "top level"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one(root: type[BaseModel], err: Any) -> str:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    kind, where = err["type"], _where(loc)
    in_steps = "preprocessing" in loc and any(isinstance(p, int) for p in loc)
    if in_steps and kind in ("model_attributes_type", "dict_type", "union_tag_not_found"):
        value = err.get("input")
        example = STEP_EXAMPLES.get(str(value), STEP_EXAMPLES["resize"])
        return (
            f"{where}: {_shown(value)} is not a step: write each step as a mapping with its op "
            f"and fields, e.g. {example}"
        )
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag", err.get("input"))
        return f"{where}: op {_shown(tag)} is not known"
    parent = _model_at(root, loc[:-1])
    if kind == "missing":
        return f"'{where}' is missing"
    if kind == "extra_forbidden":
        if parent is None:
            return f"'{where}' is not a known field"
        known = list(parent.model_fields)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        home = _field_home(parent, str(loc[-1]))
        if home:
            hint = f"it belongs under '{'.'.join([*map(str, loc[:-1]), home])}'; "
        return f"'{where}' is not a known field ({hint}fields here: {', '.join(known)})"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{where}: {_shown(err.get('input'))} is not allowed (allowed: {expected})"
    got = f" (got {_shown(err['input'])})" if "input" in err and kind != "value_error" else ""
    return f"{where}: {err['msg']}{got}"


def describe_errors(root: type[BaseModel], exc: ValidationError) -> str:
    """Each problem of ``exc`` (from validating ``root``) in words, joined by "; "; when a
    preprocessing step is wrong, the ops and their fields are listed once at the end."""
    errors = exc.errors()
    text = "; ".join(_one(root, err) for err in errors)
    if any("preprocessing" in err["loc"] for err in errors):
        text += f" (preprocessing ops and their fields: {allowed_ops()})"
    return text
