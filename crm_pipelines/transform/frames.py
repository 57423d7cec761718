"""The input contract of the transform layer: mirror frames, the link frame, and helpers to read them.

Mirror frames
-------------
One frame per CRM object, as ``crm_pipelines.state.mirror.read_records`` returns it:

- ``id`` (str), ``modified_at`` (``datetime64[ns, UTC]``), ``deleted`` (bool);
- one column per API field, named exactly as the API names it, holding the value as the API returns it
  in JSON (HubSpot property values are strings or None, also for numbers, dates and booleans).

Keys are ``(crm, object)`` with the API's object names:

- ``hubspot``: ``contacts``, ``companies``, ``deals`` (properties such as ``email``, ``createdate``,
  ``lastmodifieddate``, ``hubspot_owner_id``, ``pipeline``, ``dealstage``, ``amount``, ``closedate``);
  ``associations`` (``from_type``, ``from_id``, ``to_type``, ``to_id``, ``type_id``); ``pipelines``
  flattened to one row per stage (``pipeline_id``, ``pipeline_label``, ``stage_id``, ``stage_label``,
  ``display_order``, ``probability``, ``is_closed``, ``is_won``); ``owners`` (``id``, ``email``,
  ``firstName``, ``lastName``).
- ``salesforce``: ``Lead``, ``Contact``, ``Account``, ``Opportunity``, ``OpportunityContactRole``,
  ``OpportunityStage``, ``RecordType``, ``User`` with standard field API names (``Email``, ``IsConverted``,
  ``ConvertedContactId``, ``AccountId``, ``StageName``, ``RecordTypeId``, ``CloseDate`` ...).
- ``dynamics``: ``contacts``, ``leads``, ``accounts``, ``opportunities``, ``systemusers`` with Dataverse
  logical names (``emailaddress1``, ``_parentcustomerid_value``, ``statecode``, ``stepname`` ...).

A missing frame or a missing column reads as empty / all-None: a CRM that is not connected simply
contributes nothing.

Link frame
----------
The link table (``LINK_COLUMNS``): one row per linked HubSpot record and object kind
(``contact``, ``company``, ``deal``) with the Salesforce id and type (``Lead``/``Contact``/``Account``/
``Opportunity``) and the Dynamics id and type (``contact``/``lead``/``account``/``opportunity``); either
side may be None. Links are made by write-back, never here; identities only keep them stable.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

LINK_COLUMNS = ("kind", "hubspot_id", "salesforce_id", "salesforce_type", "dynamics_id", "dynamics_type")

# the contract's base columns, typed
BASE_DTYPES = {"id": "string", "modified_at": "datetime64[ns, UTC]", "deleted": "bool"}


def empty_links() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="string") for c in LINK_COLUMNS})


def links_of(links: pd.DataFrame | None, kind: str) -> pd.DataFrame:
    """The rows of one object kind, every column present and typed as strings."""
    if links is None or links.empty:
        return empty_links()
    out = links[links["kind"] == kind] if "kind" in links else links
    out = out.reindex(columns=list(LINK_COLUMNS))
    return out.astype("string").reset_index(drop=True)


def empty_mirror(columns: Iterable[str] = ()) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=t) for c, t in BASE_DTYPES.items()})
    for c in columns:
        if c not in frame:
            frame[c] = pd.Series(dtype=object)
    return frame


@dataclass(frozen=True)
class Mirrors:
    """The mirror frames of one transform run, keyed by ``(crm, object)``."""

    frames: Mapping[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    # the fields each frame was read with (``transform.columns.mirror_columns``; None: every field): a read of
    # another field raises instead of seeing it all None
    columns: Mapping[tuple[str, str], tuple[str, ...] | None] | None = None
    released: set[tuple[str, str]] = field(default_factory=set, compare=False)

    def get(self, crm: str, obj: str, columns: Iterable[str] = ()) -> pd.DataFrame:
        """The frame with at least ``columns`` (missing ones all None); empty if the object is not mirrored."""
        if (crm, obj) in self.released:
            raise KeyError(f"{crm}.{obj} was released: no step may read it after its last reader")
        frame = self.frames.get((crm, obj))
        columns = list(columns)
        read = self.columns.get((crm, obj)) if self.columns is not None else None
        if read is not None and (undeclared := [c for c in columns if c not in read and c not in BASE_DTYPES]):
            raise KeyError(f"{crm}.{obj}: {undeclared} not read from the mirror; declare them in "
                           "crm_pipelines/transform/columns.py")
        if frame is None:
            return empty_mirror(columns)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            frame = frame.assign(**{c: None for c in missing})
        return frame

    def live(self, crm: str, obj: str, columns: Iterable[str] = ()) -> pd.DataFrame:
        """Records not deleted in the CRM: deletions are planned elsewhere (DEL-*), identities ignore them."""
        frame = self.get(crm, obj, columns)
        if "deleted" in frame and len(frame):
            frame = frame[~frame["deleted"].astype(bool)]
        return frame

    def release(self, *keys: tuple[str, str]) -> None:
        """Drop frames that no later step reads, so their memory serves the steps that follow (a full run's
        transform, issue 11); reading one afterwards raises."""
        if isinstance(self.frames, dict):
            for key in keys:
                self.frames.pop(key, None)
                self.released.add(key)

    def replace(self, **changes: pd.DataFrame) -> Mirrors:
        """A copy with some frames replaced; keys are ``"<crm>.<object>"`` spelled with a double underscore."""
        frames = dict(self.frames)
        for key, frame in changes.items():
            crm, obj = key.split("__", 1)
            frames[(crm, obj)] = frame
        return Mirrors(frames, self.columns)


def object_frame(columns: Mapping[str, object]) -> pd.DataFrame:
    """A frame whose object arrays stay object columns. pandas 3 would otherwise infer its string dtype and
    re-validate every value - seconds per million rows, for columns that are only compared and stored."""
    return pd.DataFrame({
        name: pd.Series(v, dtype=object, copy=False) if isinstance(v, np.ndarray) and v.dtype == object else v
        for name, v in columns.items()
    })


def text(series: pd.Series) -> pd.Series:
    """A column as pandas strings with NA for None/NaN, whatever JSON type it arrived as."""
    if series.dtype == "string":
        return series
    return series.astype("string")


def flag(series: pd.Series) -> pd.Series:
    """Booleans as APIs send them: JSON true/false, 0/1, or HubSpot's "true"/"false" strings."""
    if series.dtype == bool:
        return series
    lowered = series.astype("string").str.strip().str.lower()
    return lowered.isin(["true", "1", "yes"]).astype(bool)


def utc(series: pd.Series) -> pd.Series:
    """ISO-8601 strings, epoch-ms numbers or datetimes as ``datetime64[ns, UTC]`` (NaT where unreadable)."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if pd.api.types.is_numeric_dtype(series.dtype):
        return pd.to_datetime(series, unit="ms", utc=True, errors="coerce").astype("datetime64[ns, UTC]")
    s = series.astype("string")
    out = pd.to_datetime(s, utc=True, errors="coerce", format="ISO8601")
    # epoch milliseconds (HubSpot's v1 APIs, some exports): only the few values ISO parsing left unread
    retry = out.isna() & s.notna()
    if retry.any():
        numeric = s[retry].str.fullmatch(r"-?\d{10,}").fillna(False).astype(bool)
        idx = numeric[numeric].index
        if len(idx):
            out.loc[idx] = pd.to_datetime(pd.to_numeric(s[idx]), unit="ms", utc=True)
    return out.astype("datetime64[ns, UTC]")
