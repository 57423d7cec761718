"""Settings: one pydantic model tree loaded from a YAML file, secrets from environment variables (OPS-3)."""

from crm_pipelines.settings.load import SettingsError, load_settings
from crm_pipelines.settings.model import Settings

__all__ = ["Settings", "SettingsError", "load_settings"]
