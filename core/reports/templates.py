"""Report templates per modality: section default text, as data (TOML), not code.

The defaults ship in ``resources/report_templates/default.toml``; IT can pass more files
(later: a path in the machine config) whose templates add to or replace the defaults by id.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_FILE = (
    Path(__file__).resolve().parents[2] / "resources" / "report_templates" / "default.toml"
)


class TemplateError(ValueError):
    """A template file that cannot be read, naming the file and the problem."""


@dataclass(frozen=True)
class Template:
    """One report template: the default findings and impression for an exam."""

    id: str
    title: str
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    findings: str
    impression: str


def _parse(path: Path, raw: object, n: int) -> Template:
    where = f"template {n} of '{path}'"
    if not isinstance(raw, dict):
        raise TemplateError(f"{where} is not a table")
    missing = [k for k in ("id", "title", "findings", "impression") if k not in raw]
    if missing:
        raise TemplateError(f"{where} lacks {', '.join(missing)}")
    strings = {k: raw[k] for k in ("id", "title", "findings", "impression")}
    bad = [k for k, v in strings.items() if not isinstance(v, str)]
    if bad or not raw["id"]:
        raise TemplateError(f"{where}: {', '.join(bad) or 'id'} must be non-empty text")
    lists = {k: raw.get(k, []) for k in ("modalities", "body_parts")}
    for key, value in lists.items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TemplateError(f"{where}: {key} must be a list of text")
    return Template(
        id=raw["id"],
        title=raw["title"],
        modalities=tuple(v.upper() for v in lists["modalities"]),
        body_parts=tuple(v.upper() for v in lists["body_parts"]),
        findings=raw["findings"],
        impression=raw["impression"],
    )


def read_file(path: Path) -> list[Template]:
    """The templates of one file, in file order."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TemplateError(f"report template file '{path}' does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"cannot read report template file '{path}': {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"report template file '{path}' is not valid TOML: {exc}") from exc
    items = data.get("template", [])
    if not isinstance(items, list):
        raise TemplateError(f"report template file '{path}': 'template' must be [[template]]")
    return [_parse(path, raw, n) for n, raw in enumerate(items, start=1)]


def load_templates(extra: Iterable[Path] = ()) -> dict[str, Template]:
    """The shipped templates, then each extra file's (a same id replaces), by id."""
    found: dict[str, Template] = {}
    for path in (DEFAULT_FILE, *extra):
        for template in read_file(path):
            found[template.id] = template
    return found


def template_for(
    templates: dict[str, Template] | Sequence[Template], modality: str, body_part: str = ""
) -> Template | None:
    """The template offered first for a study: its modality, preferring a body-part match."""
    pool = list(templates.values()) if isinstance(templates, dict) else list(templates)
    same = [t for t in pool if modality.upper() in t.modalities]
    if not same:
        return None
    part = body_part.upper()
    return next((t for t in same if part and part in t.body_parts), same[0])
