"""``WinOpportunity`` and ``LoseOpportunity``: Dataverse closes an opportunity by action, not by a value (DEAL-4).

Both are unbound actions (``POST [org]/api/data/v9.2/WinOpportunity``) with two required parameters:
``Status`` (the opportunity's new ``statuscode``, or ``-1`` for the state's default) and ``OpportunityClose``
(the opportunityclose activity, naming its opportunity by ``opportunityid@odata.bind``); they return nothing
(204). Sources: the WinOpportunity / LoseOpportunity Web API action references and
``Microsoft.Crm.Sdk.Messages.WinOpportunityRequest.Status`` / ``LoseOpportunityRequest.Status`` on
learn.microsoft.com.

What the sandbox does, and why:

- ``statecode`` becomes 1 (Won) or 2 (Lost), ``statuscode`` the given one, which must belong to that state;
- ``actualclosedate`` takes the close activity's ``actualend`` (date part), else today: the column is "the
  date and time when the opportunity was closed or canceled";
- ``actualvalue`` takes the activity's ``actualrevenue``; without one a won opportunity keeps an actual value
  already set, else takes ``estimatedvalue`` (the column "defaults to the Est. Revenue value when an
  opportunity is won"); a lost one keeps what it had;
- the row takes a new version and ``modifiedon``, so change tracking and ``modifiedon`` windows see the close;
- an opportunity that is not open is refused with ``OpportunityIsAlreadyClosed`` (reopen it first), a missing
  one with the usual record-not-found error.

The opportunityclose activity itself is not kept: the sandbox serves no activity tables, so there is nowhere
to read it back from. Its properties are still checked, so a payload the platform would refuse is refused.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from crm_pipelines.sandbox import clock
from crm_pipelines.sandbox.dynamics import errors
from crm_pipelines.sandbox.dynamics.catalog import OPPORTUNITY
from crm_pipelines.sandbox.dynamics.messages import ApiRequest, ApiResponse
from crm_pipelines.sandbox.dynamics.odata import parse_datetime
from crm_pipelines.sandbox.dynamics.records import Writer, parse_key

OPEN, WON, LOST = 0, 1, 2
ACTIONS = {"WinOpportunity": WON, "LoseOpportunity": LOST}
DEFAULT_STATUS = -1  # "the system automatically sets the corresponding status value"
_PARAMETERS = ("OpportunityClose", "Status")
_ENTITY_REF = re.compile(r"(?:^|/)([A-Za-z_]+)\(([^)]*)\)$")

# opportunityclose properties a caller may set (the entity's writable columns the sync could ever send); any
# other property is refused as Dataverse refuses an unknown one.
_CLOSE_PROPERTIES = {
    "activityid", "subject", "description", "actualrevenue", "actualend", "actualstart", "actualdurationminutes",
    "scheduledstart", "scheduledend", "category", "subcategory", "importsequencenumber",
}
_CLOSE_BINDS = {"opportunityid", "competitorid", "ownerid", "transactioncurrencyid"}


def close_opportunity(writer: Writer, action: str, req: ApiRequest) -> ApiResponse:
    state = ACTIONS[action]
    body = req.json()
    if not isinstance(body, dict):
        raise errors.bad_request("The request body must be a JSON object.")
    for key in body:
        if key not in _PARAMETERS and "@" not in key:
            raise errors.bad_request(
                f"The parameter '{key}' in the request payload is not a valid parameter for the operation "
                f"'{action}'.", errors.PROPERTY_NOT_FOUND)
    for key in _PARAMETERS:
        if body.get(key) is None:
            # sandbox wording: the platform refuses a missing non-nullable parameter, the text is not sourced
            raise errors.bad_request(f"The parameter '{key}' is required for the operation '{action}'.")
    status = _status(body["Status"], state)
    activity = body["OpportunityClose"]
    if not isinstance(activity, dict):
        raise errors.bad_request("Cannot convert the value of 'OpportunityClose' to the expected type "
                                 "'Microsoft.Dynamics.CRM.opportunityclose'.", errors.PROPERTY_NOT_FOUND)
    revenue, end = _activity(activity)
    opportunity = _opportunity(writer, activity)
    if opportunity["statecode"] != OPEN:
        raise errors.bad_request("The opportunity is already closed.", errors.OPPORTUNITY_ALREADY_CLOSED)
    changes: dict[str, Any] = {
        "statecode": state,
        "statuscode": status,
        "actualclosedate": _close_date(end),
    }
    if revenue is not None:
        changes["actualvalue"] = revenue
    elif state == WON and opportunity.get("actualvalue") is None:
        changes["actualvalue"] = opportunity.get("estimatedvalue")
    with writer.store.transaction():
        writer.modify(OPPORTUNITY, opportunity, changes)
    return ApiResponse(204)


def _status(value: Any, state: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.bad_request(f"Cannot convert the literal '{value}' to the expected type 'Edm.Int32'.",
                                 errors.PROPERTY_NOT_FOUND)
    options = OPPORTUNITY.by_name["statuscode"].options
    if value == DEFAULT_STATUS:
        return next(o.value for o in options if o.state == state)
    option = next((o for o in options if o.value == value), None)
    if option is None or option.state != state:
        label = OPPORTUNITY.by_name["statecode"].label(state)
        raise errors.bad_request(
            f"{value} is not a valid status code for state code {OPPORTUNITY.schema_name}State.{label} on "
            f"{OPPORTUNITY.logical_name}.", errors.INVALID_STATUS)
    return value


def _activity(activity: dict[str, Any]) -> tuple[float | None, dt.date | dt.datetime | None]:
    """The close activity's ``actualrevenue`` and ``actualend``, its other properties checked and dropped."""
    for key in activity:
        if key.endswith("@odata.bind"):
            if key[: -len("@odata.bind")] not in _CLOSE_BINDS:
                raise errors.bad_request(
                    f"An undeclared property '{key[: -len('@odata.bind')]}' which only has property annotations "
                    "in the payload but no property value was found in the payload. In OData, only declared "
                    "navigation properties and declared named streams can be represented as properties without "
                    "values.", errors.PROPERTY_NOT_FOUND)
        elif "@" not in key and key not in _CLOSE_PROPERTIES:
            raise errors.invalid_property(key, "opportunityclose")
    revenue = activity.get("actualrevenue")
    if revenue is not None and (isinstance(revenue, bool) or not isinstance(revenue, int | float)):
        raise errors.bad_request(f"Cannot convert the literal '{revenue}' to the expected type 'Edm.Decimal'.",
                                 errors.PROPERTY_NOT_FOUND)
    end_text = activity.get("actualend")
    end: dt.date | dt.datetime | None = None
    if end_text is not None:
        try:
            text = str(end_text)
            end = dt.date.fromisoformat(text) if len(text) == 10 else parse_datetime(text)
        except ValueError:
            raise errors.bad_request(
                f"Cannot convert the literal '{end_text}' to the expected type 'Edm.DateTimeOffset'.",
                errors.PROPERTY_NOT_FOUND) from None
    return (None if revenue is None else float(revenue)), end


def _close_date(end: dt.date | dt.datetime | None) -> str:
    """``actualclosedate`` is date-only: the day ``actualend`` names as written (the day the person meant, in
    their offset), else today in UTC."""
    if end is None:
        return clock.now().astimezone(dt.UTC).date().isoformat()
    return (end.date() if isinstance(end, dt.datetime) else end).isoformat()


def _opportunity(writer: Writer, activity: dict[str, Any]) -> dict[str, Any]:
    ref = activity.get("opportunityid@odata.bind")
    if ref is None:
        # sandbox wording: the platform needs the activity's opportunity to know what to close
        raise errors.bad_request("The OpportunityClose entity must have its opportunityid set.")
    m = _ENTITY_REF.search(str(ref))
    if not m or m.group(1) != OPPORTUNITY.entity_set:
        raise errors.bad_request(f"Invalid value '{ref}' for 'opportunityid@odata.bind': expected "
                                 f"/{OPPORTUNITY.entity_set}(<id>).")
    key = parse_key(OPPORTUNITY, m.group(2))
    row = writer.find(OPPORTUNITY, key)
    if row is None:
        raise errors.not_found(OPPORTUNITY.logical_name, key.describe())
    return row
