"""What the ``unified`` checks say in the UI (issue 15): what each tests, why it warns on ordinary data (the
sandboxes, and so the demo, carry such records on purpose, as real CRMs do), and what a user should do about a
failing result (``TODO``, added to its metadata as ``what_to_do``)."""

from __future__ import annotations

SANDBOX = "The sandboxes (and so the demo) hold such records on purpose, as real CRMs do, so it warns there."

DESCRIPTIONS = {
    "duplicate_emails": (
        "CON-11/CON-2: records inside one CRM that share an email (trimmed, case-insensitive). One deterministic "
        "winner is linked (Salesforce: Contact over Lead, then the latest modified, then the lowest id) and the "
        "others are reported here, never linked at random nor merged. A warning: the sync goes on. " + SANDBOX),
    "contacts_without_valid_email": (
        "CON-3: contact and lead records whose email is missing or not a valid address. They match no identity by "
        "email (CON-2); with `sync.<crm>.valid_email_only` (default true) they are not created in the other CRMs. "
        "A warning, per CRM and problem (missing / invalid), with a sample. " + SANDBOX),
    "unmapped_stages": (
        "DEAL-2: Salesforce and Dynamics deals in a pipeline or stage with no mapping to a HubSpot pipeline and "
        "stage. Those deals are neither created nor updated (reported, never guessed). A warning, per CRM, with "
        "the stages and their deal counts. It warns whenever `sync.<crm>.deals.pipelines` does not map every "
        "stage in use, as in the demo until a mapping is added."),
    "failed_normalization": (
        "CON-10/DEAL-1: mapped field values that could not be converted to the other CRM's form (a country or "
        "state in free text with no ISO code, a date or number that does not parse, a value outside a picklist). "
        "Such a value is reported per record and not written; the record's other fields still sync. "
        "A warning. " + SANDBOX),
}

TODO = {
    "duplicate_emails": (
        "Merge or delete the duplicate records in the CRM that holds them (the sample names each record and the "
        "winner it lost to). Until then nothing is lost: the winner syncs, the others stay as they are."),
    "contacts_without_valid_email": (
        "Correct or add the email on these records in their CRM: the next sync run matches and syncs them. "
        "To sync contacts without a valid email anyway, set `sync.<crm>.valid_email_only: false` (they are then "
        "linked only through the link table, never by guessing)."),
    "unmapped_stages": (
        "Map the listed stages under `sync.<crm>.deals.pipelines` (`other_pipeline`, `hubspot_pipeline`, `stages`), "
        "or set `auto_map: true` on the pipeline: the next `unified` run (a change of settings recomputes in full) "
        "proposes pairs by label (`stage_mapping_proposal` on `unified/deal_identities`) to review and paste."),
    "failed_normalization": (
        "Fix the values in the CRM they come from (the sample names record, field and value), or give the field "
        "mapping a `value_map` (`sync.<crm>.field_mappings`) that says what the value stands for."),
    "hubspot_rollups_match": (
        "A few differences right after a deal or an association changed are expected: HubSpot recomputes its "
        "rollups a little later, and the next extract reads them. Differences that stay point at deals or "
        "associations the extract missed (run the object's import again for the days concerned) or at a "
        "definition that drifted from HubSpot's (report it with the sample)."),
    "incremental_equals_full": (
        "The stored result differs from a recomputation: run `unified` once with `full: true` in the run config "
        "(Launchpad) to rebuild it, and report the sample (tables and keys) as a bug."),
}

ROLLUP_DRIFT = (
    "ROLL-1: our rollups (`unified/contact_rollups`, computed from the HubSpot deals, associations and pipelines "
    "as extracted) equal HubSpot's own calculated contact properties (num_associated_deals, "
    "first_deal_created_date, recent_deal_close_date, recent_deal_amount, total_revenue) as extracted; "
    "differences per figure, with a sample. It reads every contact's rollups, so it runs hourly (the sweep), not "
    "in the sync loop. A warning: HubSpot computes these itself and the sync never writes them. Right after an "
    "edit of a deal it may warn until HubSpot's recomputed values are extracted.")

SAMPLE_CHECK = (
    "OPS-1 (changes sync incrementally) and DESIGN's Invariant 6, incremental = full: a random sample of "
    "records per object, re-derived from the mirror, gives exactly the rows stored for them (what a full "
    "recompute gives them). An error if not: the incremental transform missed a change. It re-derives a sample "
    "(seconds at a million people), so it runs hourly (the sweep), not in the sync loop.")
