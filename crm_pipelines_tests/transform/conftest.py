from __future__ import annotations

import pandas as pd
import pytest

from crm_pipelines.bench.universe_frames import universe_mirrors
from crm_pipelines.sandbox.universe import Universe
from crm_pipelines.transform.frames import Mirrors


def mirror(rows: list[dict]) -> pd.DataFrame:
    """A mirror frame from rows; ``modified_at`` defaults to a fixed time, ``deleted`` to False."""
    frame = pd.DataFrame(rows)
    if "modified_at" not in frame:
        frame["modified_at"] = "2024-01-01T00:00:00Z"
    frame["modified_at"] = pd.to_datetime(frame["modified_at"], utc=True).astype("datetime64[ns, UTC]")
    frame["deleted"] = frame["deleted"].fillna(False).astype(bool) if "deleted" in frame else False
    frame["id"] = frame["id"].astype("string")
    return frame


def mirrors(**frames: list[dict]) -> Mirrors:
    """``mirrors(hubspot__contacts=[...], salesforce__Lead=[...])``."""
    return Mirrors({tuple(k.split("__", 1)): mirror(v) for k, v in frames.items()})  # type: ignore[misc]


@pytest.fixture(scope="session")
def universe() -> Universe:
    return Universe(seed=7, scale=3000)


@pytest.fixture(scope="session")
def universe_frames(universe: Universe) -> Mirrors:
    return universe_mirrors(universe)
