"""HubSpot's other standard objects: a portal answers for them even when it holds no such record.

Clients that list every object a portal has (Airbyte-style extractors, OPS-4's task sync) call the objects,
search, batch, properties and associations endpoints of each; a 400 "Unable to infer object type" for
``calls`` or ``tickets`` makes them fail outright. Type ids are from HubSpot's "Using object APIs" guide;
default search properties from the CRM search guide (FACTS §2) where it lists them, else the three every
object has. Engagements (calls, emails, meetings, notes, communications, postal mail) stamp
``hs_createdate`` and need ``hs_timestamp`` on create, as tasks do.
"""

from __future__ import annotations

from crm_pipelines.sandbox.hubspot.definitions import ObjectType, PropertyDef

_ENGAGEMENT_DEFAULTS = ("hs_createdate", "hs_lastmodifieddate", "hs_object_id")
_OBJECT_DEFAULTS = ("createdate", "hs_lastmodifieddate", "hs_object_id")


def _engagement(name: str, singular: str, type_id: str, id_base: int, query: tuple[str, ...]) -> ObjectType:
    return ObjectType(
        name, singular, type_id, "hs_createdate", "hs_lastmodifieddate", id_base, _ENGAGEMENT_DEFAULTS, query,
        required_on_create=("hs_timestamp",),
    )


def _object(
    name: str, singular: str, type_id: str, id_base: int, defaults: tuple[str, ...], query: tuple[str, ...]
) -> ObjectType:
    return ObjectType(name, singular, type_id, "createdate", "hs_lastmodifieddate", id_base, defaults, query)


STANDARD_OBJECT_TYPES: tuple[ObjectType, ...] = (
    _engagement("calls", "call", "0-48", 50_000_000_000, ("hs_call_title", "hs_call_body")),
    _engagement("emails", "email", "0-49", 51_000_000_000, ("hs_email_subject", "hs_email_text")),
    _engagement("meetings", "meeting", "0-47", 52_000_000_000, ("hs_meeting_title", "hs_meeting_body")),
    _engagement("notes", "note", "0-46", 53_000_000_000, ("hs_note_body",)),
    _engagement("communications", "communication", "0-18", 54_000_000_000, ("hs_communication_body",)),
    _engagement("postal_mail", "postal_mail", "0-116", 55_000_000_000, ("hs_postal_mail_body",)),
    _object(
        "tickets", "ticket", "0-5", 60_000_000_000,
        ("content", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_category", "hs_ticket_priority", "subject",
         *_OBJECT_DEFAULTS),
        ("subject", "content"),
    ),
    _object("products", "product", "0-7", 61_000_000_000, ("name", "description", "price", *_OBJECT_DEFAULTS),
            ("name", "description", "hs_sku")),
    _object("line_items", "line_item", "0-8", 62_000_000_000, ("quantity", "amount", "price", *_OBJECT_DEFAULTS),
            ("name", "hs_sku")),
    ObjectType(
        "quotes", "quote", "0-14", "hs_createdate", "hs_lastmodifieddate", 63_000_000_000,
        ("hs_expiration_date", "hs_public_url_key", "hs_status", "hs_title", *_ENGAGEMENT_DEFAULTS),
        ("hs_title",),
    ),
    _object("leads", "lead", "0-136", 64_000_000_000, ("hs_lead_name", *_OBJECT_DEFAULTS), ("hs_lead_name",)),
    _object("goal_targets", "goal_target", "0-74", 65_000_000_000, ("hs_goal_name", *_OBJECT_DEFAULTS),
            ("hs_goal_name",)),
    _object("feedback_submissions", "feedback_submission", "0-19", 66_000_000_000, _OBJECT_DEFAULTS, ()),
    _object("invoices", "invoice", "0-53", 67_000_000_000, _OBJECT_DEFAULTS, ("hs_number",)),
    # Deal splits have no object type id in the guide's table; the SDK reads them as deals/splits.
    _object("deal_split", "deal_split", "", 68_000_000_000, _OBJECT_DEFAULTS, ()),
)


def _p(name: str, label: str, kind: str, group: str, options: tuple[tuple[str, str], ...] = ()) -> PropertyDef:
    field_type = {"string": "text", "textarea": "textarea", "number": "number", "datetime": "date",
                  "date": "date", "enumeration": "select", "bool": "booleancheckbox"}[kind]
    return PropertyDef(name, label, "string" if kind == "textarea" else kind, field_type, group, options=options)


def _opts(*values: str) -> tuple[tuple[str, str], ...]:
    return tuple((v, v.replace("_", " ").title()) for v in values)


_DIRECTION = _opts("INBOUND", "OUTBOUND")

# A few properties each, the ones integrations read first; their names and kinds are HubSpot's.
STANDARD_PROPERTIES: dict[str, list[PropertyDef]] = {
    "calls": [
        _p("hs_timestamp", "Activity date", "datetime", "call"),
        _p("hs_call_title", "Call Title", "string", "call"),
        _p("hs_call_body", "Call notes", "textarea", "call"),
        _p("hs_call_direction", "Call direction", "enumeration", "call", _DIRECTION),
        _p("hs_call_duration", "Call duration", "number", "call"),
        _p("hs_call_status", "Call status", "enumeration", "call",
           _opts("BUSY", "CALLING_CRM_USER", "CANCELED", "COMPLETED", "CONNECTING", "FAILED", "IN_PROGRESS",
                 "NO_ANSWER", "QUEUED", "RINGING")),
        _p("hs_call_disposition", "Call outcome", "string", "call"),
        _p("hs_call_from_number", "From number", "string", "call"),
        _p("hs_call_to_number", "To number", "string", "call"),
    ],
    "emails": [
        _p("hs_timestamp", "Activity date", "datetime", "email"),
        _p("hs_email_subject", "Email subject", "string", "email"),
        _p("hs_email_text", "Email body", "textarea", "email"),
        _p("hs_email_direction", "Email direction", "enumeration", "email",
           _opts("EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL")),
        _p("hs_email_status", "Email send status", "enumeration", "email",
           _opts("BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT")),
    ],
    "meetings": [
        _p("hs_timestamp", "Activity date", "datetime", "meeting"),
        _p("hs_meeting_title", "Meeting name", "string", "meeting"),
        _p("hs_meeting_body", "Meeting description", "textarea", "meeting"),
        _p("hs_meeting_start_time", "Start Time", "datetime", "meeting"),
        _p("hs_meeting_end_time", "End Time", "datetime", "meeting"),
        _p("hs_meeting_outcome", "Meeting outcome", "enumeration", "meeting",
           _opts("SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED")),
    ],
    "notes": [
        _p("hs_timestamp", "Activity date", "datetime", "note"),
        _p("hs_note_body", "Note body", "textarea", "note"),
    ],
    "communications": [
        _p("hs_timestamp", "Activity date", "datetime", "communication"),
        _p("hs_communication_channel_type", "Channel type", "enumeration", "communication",
           _opts("WHATS_APP", "LINKEDIN_MESSAGE", "SMS")),
        _p("hs_communication_body", "Body", "textarea", "communication"),
    ],
    "postal_mail": [
        _p("hs_timestamp", "Activity date", "datetime", "postal_mail"),
        _p("hs_postal_mail_body", "Body", "textarea", "postal_mail"),
    ],
    "tickets": [
        _p("subject", "Ticket name", "string", "ticketinformation"),
        _p("content", "Ticket description", "textarea", "ticketinformation"),
        _p("hs_pipeline", "Pipeline", "string", "ticketinformation"),
        _p("hs_pipeline_stage", "Ticket status", "string", "ticketinformation"),
        _p("hs_ticket_category", "Category", "enumeration", "ticketinformation",
           _opts("PRODUCT_ISSUE", "BILLING_ISSUE", "FEATURE_REQUEST", "GENERAL_INQUIRY")),
        _p("hs_ticket_priority", "Priority", "enumeration", "ticketinformation", _opts("LOW", "MEDIUM", "HIGH")),
    ],
    "products": [
        _p("name", "Name", "string", "productinformation"),
        _p("description", "Description", "textarea", "productinformation"),
        _p("price", "Unit price", "number", "productinformation"),
        _p("hs_sku", "SKU", "string", "productinformation"),
    ],
    "line_items": [
        _p("name", "Name", "string", "lineiteminformation"),
        _p("quantity", "Quantity", "number", "lineiteminformation"),
        _p("price", "Unit price", "number", "lineiteminformation"),
        _p("amount", "Net price", "number", "lineiteminformation"),
        _p("hs_product_id", "Product ID", "number", "lineiteminformation"),
        _p("hs_sku", "SKU", "string", "lineiteminformation"),
    ],
    "quotes": [
        _p("hs_title", "Quote name", "string", "quoteinformation"),
        _p("hs_expiration_date", "Expiration date", "datetime", "quoteinformation"),
        _p("hs_status", "Quote approval status", "enumeration", "quoteinformation",
           _opts("DRAFT", "APPROVAL_NOT_NEEDED", "PENDING_APPROVAL", "APPROVED", "REJECTED")),
        _p("hs_public_url_key", "Public URL key", "string", "quoteinformation"),
    ],
    "leads": [_p("hs_lead_name", "Lead name", "string", "leadinformation")],
    "goal_targets": [_p("hs_goal_name", "Goal name", "string", "goalinformation")],
    "feedback_submissions": [],
    "invoices": [_p("hs_number", "Invoice number", "string", "invoiceinformation")],
    "deal_split": [_p("hs_split_percentage", "Split percentage", "number", "dealsplitinformation")],
}


def standard_properties(name: str) -> list[PropertyDef]:
    return STANDARD_PROPERTIES[name]
