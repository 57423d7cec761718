"""Pure pandas transforms from the mirror frames to unified identities, mappings and rollups.

No I/O and no Dagster here: every function takes DataFrames and small frozen settings objects and
returns DataFrames, so the Dagster assets in the ``unified`` group stay thin and the logic is tested
on hand-built frames and benchmarked on generated ones. See ``frames.py`` for the input contract.
"""
