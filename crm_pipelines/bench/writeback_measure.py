"""What ``bench writeback`` measures of a round of write runs, from outside the write path: the calls the
sandboxes received (their ``/__sandbox__/usage``), the records each run sent (the outbox's attempts), and the
least calls and time the APIs' batch sizes and published rate limits allow for them (formulas in
``bench/writeback.py``)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_pipelines.crm.dynamics.dialect import SUSTAINED_PER_S as DYNAMICS_PER_S
from crm_pipelines.crm.hubspot.dialect import HUBSPOT_LIMITS
from crm_pipelines.crm.salesforce.dialect import DAILY_ALLOCATION, DAY_S
from crm_pipelines.state.outbox import FAILED
from crm_pipelines.state.schema import write_outbox
from crm_pipelines.sync.calls import batch_size

CRMS = ("hubspot", "salesforce", "dynamics")
# the write asset's metadata counting records a CRM confirmed; a kind of write it reports under a new name
# (associations, say) is added here
WRITTEN_KEYS = ("created", "updated", "deleted")
# a HubSpot pipeline or stage is written one call each (sync/calls.py's UNBATCHED, by the plan's object name);
# the outbox names the API's object, so both spellings are looked up
_UNBATCHED_API = {("hubspot", "pipelines"): "pipeline", ("hubspot", "pipeline_stages"): "pipeline_stage"}


def _per_second(window: Any) -> float:
    return window.calls / window.period_s


# published sustained rates, calls per second, per rate bucket a write run's calls land in
RATES = {
    ("hubspot", "default"): _per_second(HUBSPOT_LIMITS.buckets["default"][0]),  # 190 per 10 s
    ("hubspot", "search"): _per_second(HUBSPOT_LIMITS.buckets["search"][0]),  # 5 per s, its own bucket
    ("salesforce", "default"): DAILY_ALLOCATION / DAY_S,  # 100,000 per rolling 24 h, no per-second limit
    ("dynamics", "default"): DYNAMICS_PER_S,  # 6,000 per 300 s per user
}


def is_login(endpoint: str) -> bool:
    """A token request: it goes to the identity provider (HubSpot's OAuth, Salesforce's login host, Entra ID),
    not against the API's own limits or allocation."""
    path = endpoint.split(" ", 1)[-1].lower()
    return "oauth" in path or path.endswith("/token")


def bucket_of(crm: str, endpoint: str) -> str:
    return "search" if crm == "hubspot" and "/search" in endpoint else "default"


def usage(info: dict) -> dict[str, Counter]:
    """API calls each sandbox received so far, per endpoint (route template)."""
    out = {}
    with httpx.Client(verify=False, timeout=60) as http:
        for crm in CRMS:
            out[crm] = Counter(http.get(f"{info[crm]['base_url']}/__sandbox__/usage").json()["endpoints"])
    return out


def set_rate_limits(info: dict, on: bool) -> None:
    """The sandboxes' published rate limits on (no faults, as ``DELETE /__sandbox__/faults`` leaves them) or
    lifted."""
    with httpx.Client(verify=False, timeout=60) as http:
        for crm in CRMS:
            http.put(f"{info[crm]['base_url']}/__sandbox__/faults",
                     json={"rate_limits_enabled": on}).raise_for_status()


_OUTBOX_COLUMNS = ("key", "target_crm", "operation", "object", "attempts", "status", "code", "message")


def outbox_attempts(engine: Engine) -> pd.DataFrame:
    """Every outbox row: its key, target, operation, object, attempts so far, status and last refusal."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*[write_outbox.c[c] for c in _OUTBOX_COLUMNS])).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=list(_OUTBOX_COLUMNS))


def sent_between(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """The writes sent in between (their rows after, with ``status_before``): new outbox rows, and rows whose
    attempts grew (a refused write retried, a write in doubt sent again). A create in doubt found in the target
    is confirmed without being sent: not counted."""
    was = after[["key"]].merge(before[["key", "attempts", "status"]].rename(columns={"status": "status_before"}),
                               on="key", how="left")  # fmt: skip
    sent = after["attempts"].to_numpy() > was["attempts"].fillna(0).to_numpy()
    return after.assign(status_before=was["status_before"].to_numpy())[sent]


def least_calls(sent: pd.DataFrame) -> dict[str, int]:
    """Per target, the fewest calls that send ``sent``: per object and operation, records / batch, rounded up."""
    out = dict.fromkeys(CRMS, 0)
    for (crm, obj, _operation), n in sent.groupby(["target_crm", "object", "operation"]).size().items():
        size = batch_size(crm, _UNBATCHED_API.get((crm, obj), obj))
        out[crm] += math.ceil(n / size)
    return out


@dataclass
class Round:
    """One round of write runs (the three CRMs side by side) and what they cost."""

    wall_s: float
    runs: dict[str, dict]  # per CRM: ``seconds``, ``step_s``, ``meta`` (the write asset's metadata)
    calls: dict[str, Counter]  # per CRM: API calls per endpoint, logins apart
    logins: int
    sent: pd.DataFrame  # outbox rows sent in this round (their state after it)
    side_by_side: bool  # the CRMs' runs went side by side (else one after another)
    least: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.least = least_calls(self.sent)

    def written_to(self, crm: str) -> int:
        return sum(int(self.runs[crm]["meta"].get(k, 0)) for k in WRITTEN_KEYS)

    @property
    def written(self) -> int:
        return sum(self.written_to(crm) for crm in CRMS)

    def calls_of(self, crm: str) -> int:
        return sum(self.calls[crm].values())

    def bound_of(self, crm: str) -> float:
        """The least time the published limits allow for this round's calls to ``crm``: each bucket's calls at
        its sustained rate, the buckets side by side."""
        per_bucket: Counter = Counter()
        for endpoint, n in self.calls[crm].items():
            per_bucket[bucket_of(crm, endpoint)] += n
        return max((n / RATES[(crm, b)] for b, n in per_bucket.items()), default=0.0)

    @property
    def bound_s(self) -> float:
        """The CRMs' limits are independent: side by side, the slowest CRM; one after another, their sum."""
        bounds = [self.bound_of(crm) for crm in CRMS]
        return max(bounds) if self.side_by_side else sum(bounds)

    def failures(self) -> pd.DataFrame:
        return self.sent[self.sent["status"] == FAILED]

    @property
    def retried(self) -> int:
        """Writes sent again because an earlier refusal's retry came due (OPS-6)."""
        return int((self.sent["status_before"] == FAILED).sum())


def calls_between(before: dict[str, Counter], after: dict[str, Counter]) -> tuple[dict[str, Counter], int]:
    """API calls per CRM and endpoint in between, and the logins among them (kept apart)."""
    calls, logins = {}, 0
    for crm in CRMS:
        delta = after[crm] - before[crm]
        logins += sum(n for e, n in delta.items() if is_login(e))
        calls[crm] = Counter({e: n for e, n in delta.items() if not is_login(e)})
    return calls, logins


def reasons(failed: pd.DataFrame, most: int = 10) -> dict[str, int]:
    """Refusals counted per ``<crm> <object> <code>: <text>``, the most frequent first; the rest summed."""
    if failed.empty:
        return {}
    labels = (failed["target_crm"] + " " + failed["object"] + " " + failed["code"].fillna("?") + ": "
              + failed["message"].fillna("").str.slice(0, 160))  # fmt: skip
    counts = labels.value_counts()
    out = {str(k): int(v) for k, v in counts.head(most).items()}
    if len(counts) > most:
        out["(other reasons)"] = int(counts.iloc[most:].sum())
    return out
