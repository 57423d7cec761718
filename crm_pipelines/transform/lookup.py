"""Column indexes for the incremental run: which rows of a big table hold one of a few values, at a cost that
follows the few values (a binary search each), not the table (``isin`` hashes every row).

An index is the non-null values' Python hashes (cached by the strings), sorted, with their row positions
(12 bytes a row); hits are confirmed on the actual values, so a hash collision costs a row read, never a wrong
answer. The full run builds the indexes the incremental run reads (``build_lookups``); an index is only used
for the very frame object it was built on (same length), anything else falls back to ``isin``."""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

MIN_ROWS = 50_000  # smaller frames are scanned (tests set 0 to run every lookup through the indexes)


def _hash(values: np.ndarray) -> np.ndarray:
    return np.fromiter(map(hash, values), dtype=np.int64, count=len(values))


class ColumnIndex:
    def __init__(self, column: pd.Series) -> None:
        values = column.to_numpy(dtype=object)
        rows = np.flatnonzero(column.notna().to_numpy(dtype=bool))
        if len(rows) < len(values):
            values = values[rows]
        h = _hash(values)
        order = np.argsort(h)  # releases the GIL: indexes are built on threads
        self.hashes = h[order]
        order = rows[order] if len(rows) < len(column) else order
        self.order = order.astype(np.int32 if len(column) < 2**31 else np.int64)

    def positions(self, column: pd.Series, values: pd.Index) -> np.ndarray:
        """Sorted row positions whose value is one of ``values`` (non-null)."""
        if not len(values):
            return np.zeros(0, dtype=np.int64)
        q = _hash(values.to_numpy(dtype=object))
        lo = np.searchsorted(self.hashes, q, "left")
        hi = np.searchsorted(self.hashes, q, "right")
        n = hi - lo
        total = int(n.sum())
        if not total:
            return np.zeros(0, dtype=np.int64)
        idx = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(total)
        pos = np.unique(self.order[idx].astype(np.int64))
        return pos[column.iloc[pos].isin(values).to_numpy(dtype=bool)]


class Lookups:
    """Indexes over the frames of one result, by (frame, column)."""

    def __init__(self) -> None:
        self._ix: dict[tuple[int, str], tuple[weakref.ref, int, ColumnIndex]] = {}

    def add(self, frame: pd.DataFrame, col: str, ix: ColumnIndex) -> None:
        self._ix[(id(frame), col)] = (weakref.ref(frame), len(frame), ix)

    def get(self, frame: pd.DataFrame, col: str) -> ColumnIndex | None:
        got = self._ix.get((id(frame), col))
        if got is not None and got[0]() is frame and got[1] == len(frame):
            return got[2]
        return None

    def observe(self, frame: pd.DataFrame, col: str, values: pd.Index) -> None:
        """Every lookup passes here first: a result that holds only part of its rows (the stored result read
        on demand, ``defs/unified/stored_result.py``) notes which rows it still lacks."""


def _values(values) -> pd.Index:
    if isinstance(values, (set, frozenset)):
        values = list(values)
    ix = pd.Index(pd.unique(np.asarray(values, dtype=object)), dtype=object)
    return ix[~ix.isna()]


def isin(lookups: Lookups | None, frame: pd.DataFrame, col: str, values) -> np.ndarray:
    """``frame[col].isin(values)`` as a bool array, through an index when ``frame`` has one."""
    vals = _values(values)
    if lookups is not None:
        lookups.observe(frame, col, vals)
    ix = lookups.get(frame, col) if lookups is not None else None
    if ix is None:
        return np.array(frame[col].isin(vals).to_numpy(dtype=bool))  # writable
    m = np.zeros(len(frame), dtype=bool)
    m[ix.positions(frame[col], vals)] = True
    return m


def lookups_of(result) -> Lookups | None:
    """The ``Lookups`` a ``TransformResult`` carries (an attribute, not a field: a result rebuilt with
    ``dataclasses.replace`` carries none, so no index outlives its frame)."""
    return getattr(result, "_lookups", None)


# the (frame, column) pairs the incremental run looks up most (queries x rows, 1M-contact bench), by result
# attribute path. Each index costs ~0.1-0.4 s of the full run; the other lookups scan (~0.3 s in all).
INDEXED = (
    ("contacts.members", ("id", "identity_id", "email", "converted_contact_id")),
    ("company_pair_src", ("contact_id", "company_id")),
    ("contact_company", ("contact_identity", "company_identity")),
    ("companies.identities", ("identity_id", "hubspot_id", "salesforce_id", "dynamics_id")),
    ("deals", ("hubspot_id", "salesforce_id", "dynamics_id")),
    ("company_domains", ("id", "domain")),
    ("contacts.identities", ("identity_id",)),
)


def build_lookups(result) -> Lookups:
    lk = Lookups()
    todo = []
    for path, cols in INDEXED:
        frame = result
        for part in path.split("."):
            frame = getattr(frame, part)
        todo += [(frame, col) for col in cols if col in frame.columns and len(frame) >= MIN_ROWS]
    with ThreadPoolExecutor(4) as pool:
        for (frame, col), ix in zip(todo, pool.map(lambda fc: ColumnIndex(fc[0][fc[1]]), todo), strict=True):
            lk.add(frame, col, ix)
    result._lookups = lk
    return lk
