"""The importers' one error, and reading the JSON/YAML files they are given.

Every refusal names the file it read (or the piece that is missing), where in it, and why:
an administrator importing a hospital's model must learn exactly what to add or change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from models.adapters.base import module_available

#: The YAML reader; JSON needs nothing.
YAML_REQUIREMENT = "PyYAML==6.0.4"


class ModelImportError(ValueError):
    """A model that cannot be imported: ``source`` (file or folder), ``where``, ``reason``."""

    def __init__(self, source: Path | str, where: str, reason: str) -> None:
        self.source = Path(source)
        self.where = where
        self.reason = reason
        super().__init__(f"cannot import '{self.source}': {where}: {reason}")


def describe_validation(exc: ValidationError) -> str:
    """A pydantic error as one line per problem: "'labels' is missing", "input.size: ..."."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "top level"
        if err["type"] == "missing":
            parts.append(f"'{loc}' is missing")
        elif err["type"] == "extra_forbidden":
            parts.append(f"'{loc}' is not a known field")
        else:
            parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def read_config(path: Path, source: Path | None = None) -> dict[str, Any]:
    """A JSON or YAML file (by suffix) as a dict; refuses anything else, naming the file."""
    who = source or path
    label = str(path if source is None else _relative(path, source))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelImportError(who, label, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelImportError(who, label, f"cannot read: {exc}") from exc
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        if not module_available("yaml"):
            raise ModelImportError(
                who,
                label,
                f"reading YAML needs PyYAML (pip install '{YAML_REQUIREMENT}'); "
                "or give the same content as JSON",
            )
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ModelImportError(who, label, f"not valid YAML: {exc}") from exc
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelImportError(who, label, f"not valid JSON: {exc}") from exc
    else:
        raise ModelImportError(who, label, "expected a .json, .yaml or .yml file")
    if not isinstance(data, dict):
        raise ModelImportError(who, label, "the top level must be a mapping of fields")
    return data


def _relative(path: Path, source: Path) -> Path:
    try:
        return path.relative_to(source)
    except ValueError:
        return path
