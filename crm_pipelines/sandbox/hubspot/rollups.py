"""HubSpot's own calculated deal rollups on contacts (SPEC "Contact rollups", ROLL-1), as the portal keeps them.

HubSpot computes five read-only contact properties from the contact's associated deals and recomputes them
whenever a deal or an association changes ("How are the properties used for revenue reporting calculated?",
knowledge.hubspot.com; seed 004; ``docs/hubspot_rollups.md``):

- ``num_associated_deals``: how many (live) deals the contact is associated with
- ``first_deal_created_date``: the create date of the earliest created of them
- ``recent_deal_close_date``: the close date of the most recently *closed* closed-won deal
- ``recent_deal_amount``: the amount of the most recently *created* closed-won deal (not the one behind
  ``recent_deal_close_date``)
- ``total_revenue``: the sum of the amounts of the closed-won deals

A stage is won when its pipeline's metadata says closed with probability 1 (FACTS §11). A contact without a
live deal carries none of them (null). Ties are broken by the higher deal id (the later created record).

The portal stores the values with the contact's other properties, so reads, search and sorting serve them
like any property at no extra cost; a write that changes a deal or an association recomputes the contacts it
touches (``Portal``), and seeding computes them in bulk (``seed.py``). One function, ``figures``, decides
the values in both cases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from crm_pipelines.sandbox.hubspot.values import iso_ms, parse_timestamp_ms

ROLLUP_PROPERTIES = (
    "num_associated_deals",
    "first_deal_created_date",
    "recent_deal_close_date",
    "recent_deal_amount",
    "total_revenue",
)
# what a property history entry written by HubSpot's own calculation says its source was
SOURCE_CALCULATED = "CALCULATED"
# the deal properties a change of which moves the rollups (besides the deal's creation and archiving)
DEAL_INPUTS = frozenset({"amount", "closedate", "dealstage", "pipeline"})


@dataclass(frozen=True)
class DealFacts:
    id: int
    created_ms: int
    close_ms: int | None
    amount: float | None
    won: bool


def won_stages(pipelines: Iterable[Mapping]) -> set[tuple[str, str]]:
    """(pipeline id, stage id) of every closed stage with probability 1."""
    out = set()
    for p in pipelines:
        for s in p.get("stages") or []:
            meta = s.get("metadata") or {}
            try:
                probability = float(meta.get("probability"))
            except (TypeError, ValueError):
                continue
            if str(meta.get("isClosed")).lower() == "true" and probability == 1.0:
                out.add((str(p["id"]), str(s["id"])))
    return out


def deal_facts(deal_id: int, created_ms: int, properties: Mapping[str, str | None],
               won: set[tuple[str, str]]) -> DealFacts:  # fmt: skip
    amount = properties.get("amount")
    try:
        value = float(amount) if amount not in (None, "") else None
    except ValueError:
        value = None
    close = properties.get("closedate")
    stage = (properties.get("pipeline") or "default", properties.get("dealstage") or "")
    return DealFacts(deal_id, created_ms, parse_timestamp_ms(close) if close else None, value, stage in won)


def number(value: float) -> str:
    """A number property as HubSpot writes a computed one: ``"6200.0"`` (cents kept, float noise dropped)."""
    return repr(round(value, 6))


def figures(deals: Sequence[DealFacts]) -> dict[str, str | None]:
    """The five properties for one contact from its live associated deals (each deal once)."""
    if not deals:
        return dict.fromkeys(ROLLUP_PROPERTIES)
    won = [d for d in deals if d.won]
    closed = max(won, key=lambda d: (d.close_ms is not None, d.close_ms or 0, d.id), default=None)
    latest = max(won, key=lambda d: (d.created_ms, d.id), default=None)
    amounts = [d.amount for d in won if d.amount is not None]
    return {
        "num_associated_deals": str(len(deals)),
        "first_deal_created_date": iso_ms(min(d.created_ms for d in deals)),
        "recent_deal_close_date": iso_ms(closed.close_ms) if closed and closed.close_ms is not None else None,
        "recent_deal_amount": number(latest.amount) if latest and latest.amount is not None else None,
        "total_revenue": number(sum(amounts)) if amounts else None,
    }


def changed(current: Mapping[str, str | None], computed: Mapping[str, str | None]) -> dict[str, str | None]:
    """The rollup properties whose stored value differs from the computed one."""
    return {k: v for k, v in computed.items() if current.get(k) != v}
