"""Dagster definitions of crm_pipelines, loaded automatically by `crm_pipelines.definitions`.

One sub-package per concern (`extract/`, `unified/`, `writeback/`) plus `resources.py` and
`partitions.py`. Every module in this folder is imported by the loader, so none may do I/O at import
time: connections, files and API calls belong inside assets, sensors and resources.
"""
