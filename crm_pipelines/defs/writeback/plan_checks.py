"""What the plans' checks say in the UI (issue 15): what each one tests, why it can warn on ordinary data (the
demo's included), and, in the failing result's metadata, what a user should do."""

from __future__ import annotations


def conflicts_description(crm: str) -> str:
    return (
        f"CONF-1/CONF-2: fields of linked records changed both in {crm} and in HubSpot within the conflict window "
        f"(`sync.{crm}.conflict_window_minutes`, default 5); the default app's value wins "
        f"(`sync.{crm}.default_app`, default HubSpot) and is what the plan writes. A warning, never a failure: each "
        "conflict is resolved by the rule, and the sample shows the record, field, both values and the winner. "
        "The demo makes one such edit on purpose, so it warns there.")


CONFLICTS_TODO = (
    "Nothing has to be done: each field was resolved by CONF-1/CONF-2 and the plan writes the winning value. "
    "Where the losing value was the right one, edit the record again in the CRM that should win (an edit outside "
    "the window is the later change and wins, CONF-2), or change `sync.{crm}.default_app`.")


def budget_description(crm: str) -> str:
    return (
        f"OPS-2/OPS-8: the calls the plan needs fit the calls left in {crm}'s 24 h budget "
        f"(`connections.{crm}.api_call_limit`; no limit set: always passes). When they do not, the writes that do "
        "not fit are deferred to a later run (nothing is lost) and this check warns, with the calls needed and left.")


BUDGET_TODO = (
    "The plan needs {needed} calls and the 24 h budget has {left} left: the deferred records are written by later "
    "runs as calls free up. To write them sooner, raise `connections.{crm}.api_call_limit` (within what the CRM "
    "allows), or wait: the budget is a rolling 24 h window.")
