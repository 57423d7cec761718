"""Result tables of the transform layer: each frame replaced whole in the state database on every run."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
import pandas as pd
from sqlalchemy.engine import Engine

PREFIX = "unified_"


def _storable(frame: pd.DataFrame) -> pd.DataFrame:
    """Nested values (lists, dicts) as JSON text, so every backend stores them."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype != object:
            continue
        # one probe on the first non-null value: the transform's columns hold one kind of value each
        first = out[column].dropna().head(1)
        if len(first) and isinstance(first.iloc[0], dict | list | tuple):
            out[column] = out[column].map(
                lambda v: orjson.dumps(v).decode() if isinstance(v, dict | list | tuple) else v
            )
    return out


def store_frames(engine: Engine, frames: Mapping[str, pd.DataFrame]) -> dict[str, int]:
    """Replace ``unified_<name>`` with each frame, all in one transaction; returns rows per table."""
    written = {}
    with engine.begin() as conn:
        for name, frame in frames.items():
            _storable(frame).to_sql(f"{PREFIX}{name}", conn, if_exists="replace", index=False, chunksize=10_000)
            written[name] = len(frame)
    return written


def read_frame(engine: Engine, name: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql_table(f"{PREFIX}{name}", conn)
