"""Extraction: read a CRM object's changes through its connector and write them into its mirror table.

Knows connectors and the state database; nothing of Dagster (the assets in ``defs/extract`` call it).
"""
