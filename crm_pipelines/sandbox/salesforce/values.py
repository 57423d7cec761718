"""How Salesforce writes times: ``2013-05-20T20:49:32.000+0000`` (millis, offset without colon; FACTS §5).

Stored in that exact form, UTC, so text order is time order and SOQL comparisons are string comparisons.
"""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd

from crm_pipelines.sandbox import clock


def sf_datetime(stamp: dt.datetime) -> str:
    utc = stamp.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def now() -> str:
    return sf_datetime(clock.now())


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_datetime(text: str) -> dt.datetime:
    """Salesforce's own form and the ISO forms clients send (``Z``, ``+00:00``, naive = UTC)."""
    value = text.strip().replace("Z", "+00:00")
    if len(value) > 5 and value[-5] in "+-" and value[-3] != ":":
        value = value[:-2] + ":" + value[-2:]
    stamp = dt.datetime.fromisoformat(value)
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)


def sf_datetimes(series: pd.Series) -> np.ndarray:
    """Vectorised ``sf_datetime`` for a column of a million timestamps (no per-row strftime)."""
    stamps = pd.to_datetime(series, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")
    text = np.datetime_as_string(stamps, unit="ms").astype(object)
    out = text + "+0000"
    out[pd.isna(series).to_numpy()] = None
    return out


def sf_dates(series: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(series, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[D]")
    out = np.datetime_as_string(stamps, unit="D").astype(object)
    out[pd.isna(series).to_numpy()] = None
    return out
