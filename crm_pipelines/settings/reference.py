"""The configuration reference (issue 15): every settings key rendered from the model tree, so the document
says what ``load_settings`` accepts and nothing else. ``docs/configuration.md`` is this module's output; a test
compares it with a fresh render, and ``crm-pipelines settings reference --write`` regenerates it.
"""

from __future__ import annotations

import datetime as dt
import types
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import BaseModel, HttpUrl
from pydantic.fields import FieldInfo

from crm_pipelines.settings.load import ENV_OVERRIDES, SETTINGS_ENV
from crm_pipelines.settings.model import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
REGENERATE = "crm-pipelines settings reference --write"
SECRET_SUFFIX = "_env"  # a connection key naming the variable that holds a secret (``crm/connections.py`` reads them)

Kind = Literal["value", "section", "list", "mapping"]


@dataclass(frozen=True)
class Key:
    """One settings key as a user writes it in YAML."""

    path: str  # dotted; the entries of a list of sections as ``name[]``
    kind: Kind  # a value; a section of keys; a list of sections; a mapping whose keys are the user's own
    type: str  # the type with its allowed values and bounds, in words
    default: str  # in YAML, ``required`` for a key without one; empty for a section
    env: str  # the environment variable this key names or that overrides it, if any
    description: str


class MissingDescription(ValueError):
    """A settings field without ``Field(description=...)``: the reference would have nothing to say about it."""


def keys(model: type[BaseModel] = Settings, prefix: str = "") -> list[Key]:
    """Every key under ``model``, depth first in the model's field order."""
    out: list[Key] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        if not field.description:
            raise MissingDescription(f"settings key {path} ({model.__name__}.{name}) has no description")
        annotation, optional = _unwrap_optional(field.annotation)
        section = _model(annotation)
        item = _list_item_model(annotation)
        if section is not None:
            out.append(Key(path, "section", "section", "", "", field.description))
            out.extend(keys(section, f"{path}."))
        elif item is not None:
            out.append(Key(path, "list", f"list of entries (see `{path}[]`)", _default(field), "", field.description))
            out.extend(keys(item, f"{path}[]."))
        else:
            kind: Kind = "mapping" if get_origin(annotation) is dict else "value"
            text = _type(annotation) + _bounds(field) + (", or `null`" if optional else "")
            out.append(Key(path, kind, text, _default(field), _env(path, name, field), field.description))
    return out


def render() -> str:
    """``docs/configuration.md``: the generated header, the environment variables, then every section's keys."""
    all_keys = keys()
    lines = [
        "# Configuration reference",
        "",
        f"_Generated from the settings model (`crm_pipelines/settings/model.py`) by `{REGENERATE}`; "
        "do not edit by hand: a test fails when this file and the model differ._",
        "",
        f"The settings are one YAML file named by `${SETTINGS_ENV}` (or `--settings FILE`; neither: every default). "
        "They are validated when loaded: an unknown key, a wrong type or a value out of range is an error naming the "
        "key's path. `crm_pipelines.example.yaml` shows a deployment's file; `crm-pipelines check` validates the file "
        "and each connection's credentials. Keys below are written as dotted paths: `connections.hubspot.writes` is "
        "`writes` under `hubspot` under `connections`; `sync.salesforce.deals.pipelines[].stages` is `stages` in an "
        "entry of the list `pipelines`.",
        "",
        "## Environment variables",
        "",
        "Secrets never go in the file: each connection names the variables that hold them, and the names can be "
        "changed with the key shown.",
        "",
        "| Variable | What it holds | Key |",
        "|---|---|---|",
        f"| `{SETTINGS_ENV}` | the path of the settings file | |",
    ]
    for key in all_keys:
        if key.env:
            lines.append(f"| `{key.env}` | {_cell(_holds(key))} | `{key.path}` |")
    lines += ["", "## Keys", ""]
    sections = [Key("", "section", "section", "", "", "The keys at the top of the file.")]
    sections += [k for k in all_keys if k.kind in ("section", "list")]
    for section in sections:
        own = _children(all_keys, section)
        title = section.path + ("[]" if section.kind == "list" else "") if section.path else "Top level"
        intro = f"Each entry of the list `{section.path}` has these keys." if section.kind == "list" \
            else section.description
        lines += [f"### `{title}`" if section.path else f"### {title}", "", intro, ""]
        rows = [k for k in own if k.kind != "section"]
        if rows:
            lines += ["| Key | Type | Default | Environment variable | Description |", "|---|---|---|---|---|"]
            lines += [f"| `{k.path}` | {_cell(k.type)} | {_cell(_code(k.default))} | {_cell(_code(k.env))} | "
                      f"{_cell(k.description)} |" for k in rows]
            lines.append("")
        nested = [k for k in own if k.kind == "section"]
        if nested:
            lines += ["Sections: " + ", ".join(f"`{k.path}`" for k in nested) + ".", ""]
    return "\n".join(lines)


def write(path: Path = DOC) -> bool:
    """Write the reference to ``path``; whether its content changed."""
    text = render()
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def _holds(key: Key) -> str:
    """What a variable holds, in the words of the key that names it or that it overrides."""
    if key.env == ENV_OVERRIDES.get(key.path):
        return f"overrides `{key.path}` (use it when the value holds a password)"
    return key.description.removeprefix("Name of the environment variable holding ")


def _children(all_keys: list[Key], section: Key) -> list[Key]:
    """The keys directly under ``section`` (a list's keys are under ``<path>[]``)."""
    prefix = "" if not section.path else section.path + ("[]." if section.kind == "list" else ".")
    rest = [k for k in all_keys if k.path.startswith(prefix) and k.path != section.path]
    return [k for k in rest if "." not in k.path[len(prefix):]]


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        optional = len(args) < len(get_args(annotation))
        if len(args) == 1:
            return args[0], optional
        return Union[tuple(args)], optional  # noqa: UP007 - a Union built from a tuple of types
    return annotation, False


def _model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _list_item_model(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        return _model(item)
    return None


_NAMES: dict[Any, str] = {bool: "boolean", int: "integer", float: "number", str: "text", HttpUrl: "URL",
                          dt.date: "date (`YYYY-MM-DD`)",
                          dt.datetime: "date and time (ISO 8601, e.g. `2026-01-01T00:00:00Z`)"}  # fmt: skip


def _type(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{v}`" for v in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in annotation)
    if origin is list:
        (item,) = get_args(annotation)
        return f"list of {_type(item)}"
    if origin is dict:
        key, value = get_args(annotation)
        return f"mapping of {_type(key)} to {_type(value)}"
    if origin in (Union, types.UnionType):
        names = [_type(a) for a in get_args(annotation)]
        return ", ".join(names[:-1]) + " or " + names[-1]
    try:
        return _NAMES[annotation]
    except KeyError:
        raise TypeError(f"no words for the settings type {annotation!r}: add it to reference._NAMES") from None


def _bounds(field: FieldInfo) -> str:
    words = []
    for m in field.metadata:
        if isinstance(m, annotated_types.Ge):
            words.append(f"≥ {m.ge}")
        elif isinstance(m, annotated_types.Gt):
            words.append(f"> {m.gt}")
        elif isinstance(m, annotated_types.Le):
            words.append(f"≤ {m.le}")
        elif isinstance(m, annotated_types.Lt):
            words.append(f"< {m.lt}")
        elif getattr(m, "pattern", None):
            words.append(f"matching `{m.pattern}`")
    return (" " + ", ".join(words)) if words else ""


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    return _yaml(field.get_default(call_default_factory=True))


def _yaml(value: Any) -> str:
    """A value as it is written in the settings file (so `"62.0"` keeps its quotes)."""
    if isinstance(value, Enum):
        value = value.value
    elif isinstance(value, HttpUrl):
        value = str(value)
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, sort_keys=False).strip()
    return text.removesuffix("...").strip()


def _env(path: str, name: str, field: FieldInfo) -> str:
    if name.endswith(SECRET_SUFFIX):
        return str(field.default)
    return ENV_OVERRIDES.get(path, "")


def _code(text: str) -> str:
    return f"`{text}`" if text and text != "required" else text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    print(render())
