"""Connectors: one HTTP client per CRM. Knows HTTP and each API's dialect; nothing of Dagster, pandas or sync rules."""
