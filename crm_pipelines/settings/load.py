"""Loading settings: YAML from ``CRM_PIPELINES_SETTINGS`` (or a given path), validated at load time."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from crm_pipelines.settings.model import Settings

SETTINGS_ENV = "CRM_PIPELINES_SETTINGS"
STATE_DB_ENV = "CRM_PIPELINES_STATE_DB_URL"
# top-level keys an environment variable overrides, because their values can hold a password (the
# configuration reference, ``reference.py``, lists them from here)
ENV_OVERRIDES = {"state_database_url": STATE_DB_ENV}


class SettingsError(ValueError):
    """Invalid settings, one line per problem, each naming the key path."""


def _key_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-"))


def load_settings(path: str | Path | None = None) -> Settings:
    """The settings in ``path`` (default: ``$CRM_PIPELINES_SETTINGS``; none → all defaults).

    ``CRM_PIPELINES_STATE_DB_URL`` overrides the state database URL, because that URL can hold a password.
    """
    path = path or os.environ.get(SETTINGS_ENV)
    raw: dict = {}
    if path:
        source = Path(path)
        if not source.is_file():
            raise SettingsError(f"{source}: settings file not found")
        try:
            raw = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise SettingsError(f"{source}: not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise SettingsError(f"{source}: the top level must be a mapping of settings")
    for key, name in ENV_OVERRIDES.items():
        if os.environ.get(name):
            raw = {**raw, key: os.environ[name]}
    try:
        return Settings.model_validate(raw)
    except ValidationError as e:
        where = f"{path}: " if path else ""
        lines = [f"{where}{_key_path(err['loc']) or '(top level)'}: {err['msg']}" for err in e.errors()]
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
