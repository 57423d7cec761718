"""The rest of a new portal's default contact, company and deal properties (issue 16).

A fresh HubSpot portal has a few hundred built-in properties per object (analytics, email engagement,
lifecycle-stage dates, sales activity, ownership, object source …); the hand-written ones in ``catalog.py`` are
those the sandbox's data fills. A client reading ``/crm/v3/properties/{object}`` and then asking for every
property (Singer/Airbyte-style extractors) sees a catalogue, and responses, of realistic size. Names, types
and groups are HubSpot's; most are read-only values HubSpot calculates, marked so in
``modificationMetadata.readOnlyValue``. Unset properties come back as ``null`` when requested, as on HubSpot.

Each row is ``name|Label|kind|group`` with kind ``s`` text, ``t`` textarea, ``n`` number, ``d`` date,
``dt`` datetime, ``b`` bool, ``e:A,B,C`` enumeration; a trailing ``|ro`` marks a read-only (calculated) value.
"""

from __future__ import annotations

from crm_pipelines.sandbox.hubspot.definitions import PropertyDef

_KINDS = {"s": ("string", "text"), "t": ("string", "textarea"), "n": ("number", "number"),
          "d": ("date", "date"), "dt": ("datetime", "date"), "b": ("bool", "booleancheckbox")}
_LIFECYCLE = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer",
              "evangelist", "other")
_SOURCES = "e:source"
# Option lists too long for a row, by name (``e:<name>``).
_OPTIONS: dict[str, tuple[str, ...]] = {
    "source": ("ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA", "REFERRALS", "OTHER_CAMPAIGNS",
               "DIRECT_TRAFFIC", "OFFLINE", "PAID_SOCIAL", "AI_REFERRALS"),
    "buying_role": ("BLOCKER", "BUDGET_HOLDER", "CHAMPION", "DECISION_MAKER", "END_USER", "EXECUTIVE_SPONSOR",
                    "INFLUENCER", "LEGAL_AND_COMPLIANCE", "OTHER"),
    "legal_basis": ("Legitimate interest - prospect/lead", "Legitimate interest - existing customer",
                    "Performance of a contract", "Freely given consent from contact", "Not applicable"),
    "bounce": ("MAILBOX_FULL", "UNKNOWN_USER", "CONTENT", "SPAM", "POLICY", "OTHER"),
    "score_tier": ("tier_1", "tier_2", "tier_3", "tier_4", "closed_won", "closed_lost"),
    "lead_status": ("NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", "CONNECTED",
                    "BAD_TIMING"),
}

_SHARED = """
hs_object_source|Record source|s|{g}|ro
hs_object_source_id|Record source ID|s|{g}|ro
hs_object_source_label|Record source label|s|{g}|ro
hs_object_source_detail_1|Record source detail 1|s|{g}|ro
hs_object_source_detail_2|Record source detail 2|s|{g}|ro
hs_object_source_detail_3|Record source detail 3|s|{g}|ro
hs_object_source_user_id|Record creation user ID|n|{g}|ro
hs_created_by_user_id|Created by user ID|n|{g}|ro
hs_updated_by_user_id|Updated by user ID|n|{g}|ro
hs_merged_object_ids|Merged record IDs|s|{g}|ro
hs_was_imported|Is imported|b|{g}|ro
hs_read_only|Read only object|b|{g}|ro
hs_unique_creation_key|Unique creation key|s|{g}|ro
hs_user_ids_of_all_owners|User IDs of all owners|s|{g}|ro
hs_user_ids_of_all_notification_followers|User IDs of all notification followers|s|{g}|ro
hs_user_ids_of_all_notification_unfollowers|User IDs of all notification unfollowers|s|{g}|ro
hs_all_owner_ids|All owner IDs|s|{g}|ro
hs_all_team_ids|All team IDs|s|{g}|ro
hs_all_accessible_team_ids|All teams|s|{g}|ro
hs_all_assigned_business_unit_ids|Business units|s|{g}|ro
hubspot_team_id|HubSpot Team|s|{g}
hubspot_owner_assigneddate|Owner assigned date|dt|{g}|ro
hs_shared_team_ids|Shared teams|s|{g}
hs_shared_user_ids|Shared users|s|{g}
hs_pinned_engagement_id|Pinned engagement ID|n|{g}
hs_lastmodifieddate_by_integration|Last modified by integration|dt|{g}|ro
hs_object_has_activity|Has activity|b|{g}|ro
notes_last_contacted|Last Contacted|dt|{g}|ro
notes_last_updated|Last Activity Date|dt|{g}|ro
notes_next_activity_date|Next Activity Date|dt|{g}|ro
num_contacted_notes|Number of times contacted|n|{g}|ro
num_notes|Number of Sales Activities|n|{g}|ro
hs_last_sales_activity_timestamp|Last engagement date|dt|{g}|ro
hs_last_sales_activity_type|Last engagement type|s|{g}|ro
hs_last_sales_activity_date|last sales activity date old|dt|{g}|ro
hs_next_activity_type|Next activity type|s|{g}|ro
hs_latest_meeting_activity|Latest meeting activity|dt|{g}|ro
hs_last_logged_call_date|Last logged call date|dt|{g}|ro
hs_last_open_task_date|Last open task date|dt|{g}|ro
hs_num_open_deals|Number of open deals|n|{g}|ro
hs_time_to_first_engagement|Time to first engagement|n|{g}|ro
hs_analytics_source|Original Traffic Source|{src}|analyticsinformation|ro
hs_analytics_source_data_1|Original Traffic Source Drill-Down 1|s|analyticsinformation|ro
hs_analytics_source_data_2|Original Traffic Source Drill-Down 2|s|analyticsinformation|ro
hs_analytics_latest_source|Latest Traffic Source|{src}|analyticsinformation|ro
hs_analytics_latest_source_data_1|Latest Traffic Source Drill-Down 1|s|analyticsinformation|ro
hs_analytics_latest_source_data_2|Latest Traffic Source Drill-Down 2|s|analyticsinformation|ro
hs_analytics_latest_source_timestamp|Latest Traffic Source Date|dt|analyticsinformation|ro
hs_analytics_first_timestamp|Time First Seen|dt|analyticsinformation|ro
hs_analytics_last_timestamp|Time Last Seen|dt|analyticsinformation|ro
hs_analytics_first_visit_timestamp|Time of First Session|dt|analyticsinformation|ro
hs_analytics_last_visit_timestamp|Time of Last Session|dt|analyticsinformation|ro
hs_analytics_num_page_views|Number of Pageviews|n|analyticsinformation|ro
hs_analytics_num_visits|Number of Sessions|n|analyticsinformation|ro
hs_analytics_first_touch_converting_campaign|First Touch Converting Campaign|s|analyticsinformation|ro
hs_analytics_last_touch_converting_campaign|Last Touch Converting Campaign|s|analyticsinformation|ro
first_conversion_date|First Conversion Date|dt|conversioninformation|ro
first_conversion_event_name|First Conversion|s|conversioninformation|ro
recent_conversion_date|Recent Conversion Date|dt|conversioninformation|ro
recent_conversion_event_name|Recent Conversion|s|conversioninformation|ro
num_conversion_events|Number of Form Submissions|n|conversioninformation|ro
"""

_CONTACTS = """
salutation|Salutation|s|contactinformation
fax|Fax Number|s|contactinformation
hs_additional_emails|Additional email addresses|s|contactinformation|ro
hs_email_domain|Email Domain|s|contactinformation|ro
date_of_birth|Date of birth|s|contactinformation
degree|Degree|s|contactinformation
field_of_study|Field of study|s|contactinformation
school|School|s|contactinformation
graduation_date|Graduation date|s|contactinformation
gender|Gender|s|contactinformation
marital_status|Marital Status|s|contactinformation
military_status|Military status|s|contactinformation
relationship_status|Relationship Status|s|contactinformation
job_function|Job function|s|contactinformation
seniority|Seniority|s|contactinformation
work_email|Work email|s|contactinformation
message|Message|t|contactinformation
annualrevenue|Annual Revenue|s|contactinformation
numemployees|Number of Employees|e:1-5,5-25,25-50,50-100,100-500,500-1000,1000+|contactinformation
industry|Industry|s|contactinformation
company_size|Company size|s|contactinformation
associatedcompanyid|Primary Associated Company ID|n|contactinformation|ro
associatedcompanylastupdated|Associated Company Last Updated|n|contactinformation|ro
hs_language|Preferred language|e:en,de,fr,es,it,nl,pl,pt,tr,ja|contactinformation
hs_timezone|Time Zone|s|contactinformation
hs_persona|Persona|e:persona_1,persona_2,persona_3|contactinformation
hs_buying_role|Buying Role|e:buying_role|contactinformation
hs_whatsapp_phone_number|WhatsApp Phone Number|s|contactinformation
hs_state_code|State/Region Code|s|contactinformation|ro
hs_country_region_code|Country/Region Code|s|contactinformation|ro
hs_calculated_phone_number|Calculated Phone Number|s|contactinformation|ro
hs_calculated_mobile_number|Calculated Mobile Number|s|contactinformation|ro
hs_calculated_phone_number_country_code|Calculated Phone Number Country Code|s|contactinformation|ro
hs_searchable_calculated_phone_number|Phone Number (searchable)|s|contactinformation|ro
hs_searchable_calculated_mobile_number|Mobile Phone Number (searchable)|s|contactinformation|ro
hs_is_contact|Is a contact|b|contactinformation|ro
hs_is_unworked|Contact unworked|b|contactinformation|ro
hs_all_contact_vids|All vids for a contact|s|contactinformation|ro
hs_calculated_merged_vids|Merged vids with timestamps of a contact|s|contactinformation|ro
hs_legal_basis|Legal basis for processing contact's data|e:legal_basis|contactinformation
hs_content_membership_status|Status|e:active,inactive|contactinformation|ro
hs_registered_member|Registered member|b|contactinformation|ro
twitterhandle|Twitter Username|s|socialmediainformation
twitterbio|Twitter Bio|s|socialmediainformation|ro
twitterprofilephoto|Twitter Profile Photo|s|socialmediainformation|ro
linkedinbio|LinkedIn Bio|s|socialmediainformation|ro
linkedinconnections|LinkedIn Connections|n|socialmediainformation|ro
hs_linkedin_url|LinkedIn URL|s|socialmediainformation
followercount|Follower Count|n|socialmediainformation|ro
hs_facebook_click_id|Facebook click id|s|analyticsinformation|ro
hs_google_click_id|Google ad click id|s|analyticsinformation|ro
hs_analytics_first_url|First Page Seen|s|analyticsinformation|ro
hs_analytics_last_url|Last Page Seen|s|analyticsinformation|ro
hs_analytics_first_referrer|First Referring Site|s|analyticsinformation|ro
hs_analytics_last_referrer|Last Referring Site|s|analyticsinformation|ro
hs_analytics_average_page_views|Average Pageviews|n|analyticsinformation|ro
hs_analytics_num_event_completions|Number of event completions|n|analyticsinformation|ro
hs_analytics_revenue|Event Revenue|n|analyticsinformation|ro
hs_latest_source|Latest Traffic Source|{src}|analyticsinformation|ro
hs_latest_source_data_1|Latest Traffic Source Drill-Down 1|s|analyticsinformation|ro
hs_latest_source_data_2|Latest Traffic Source Drill-Down 2|s|analyticsinformation|ro
hs_latest_source_timestamp|Latest Traffic Source Date|dt|analyticsinformation|ro
num_unique_conversion_events|Number of Unique Forms Submitted|n|conversioninformation|ro
hs_calculated_form_submissions|Calculated form submissions|s|conversioninformation|ro
hs_email_optout|Unsubscribed from all email|b|emailinformation|ro
hs_email_bounce|Marketing emails bounced|n|emailinformation|ro
hs_email_click|Marketing emails clicked|n|emailinformation|ro
hs_email_open|Marketing emails opened|n|emailinformation|ro
hs_email_delivered|Marketing emails delivered|n|emailinformation|ro
hs_email_replied|Marketing emails replied|n|emailinformation|ro
hs_email_first_send_date|First marketing email send date|dt|emailinformation|ro
hs_email_last_send_date|Last marketing email send date|dt|emailinformation|ro
hs_email_first_open_date|First marketing email open date|dt|emailinformation|ro
hs_email_last_open_date|Last marketing email open date|dt|emailinformation|ro
hs_email_first_click_date|First marketing email click date|dt|emailinformation|ro
hs_email_last_click_date|Last marketing email click date|dt|emailinformation|ro
hs_email_first_reply_date|First marketing email reply date|dt|emailinformation|ro
hs_email_last_reply_date|Last marketing email reply date|dt|emailinformation|ro
hs_email_last_email_name|Last marketing email name|s|emailinformation|ro
hs_email_quarantined|Email address quarantined|b|emailinformation|ro
hs_email_quarantined_reason|Email address quarantine reason|s|emailinformation|ro
hs_email_hard_bounce_reason|Email hard bounce reason|s|emailinformation|ro
hs_email_hard_bounce_reason_enum|Email hard bounce reason|e:bounce|emailinformation|ro
hs_email_sends_since_last_engagement|Sends Since Last Engagement|n|emailinformation|ro
hs_emailconfirmationstatus|Marketing email confirmation status|s|emailinformation|ro
hs_email_is_ineligible|Is globally ineligible|b|emailinformation|ro
hs_email_recipient_fatigue_recovery_time|Recipient fatigue recovery time|dt|emailinformation|ro
hs_sales_email_last_replied|Recent Sales Email Replied Date|dt|sales_properties|ro
hs_sales_email_last_opened|Recent Sales Email Opened Date|dt|sales_properties|ro
hs_sales_email_last_clicked|Recent Sales Email Clicked Date|dt|sales_properties|ro
hs_sequences_is_enrolled|Currently in Sequence|b|sales_properties|ro
hs_sequences_enrolled_count|Number of sequences enrolled|n|sales_properties|ro
hs_sequences_actively_enrolled_count|Number of active sequences|n|sales_properties|ro
hs_latest_sequence_enrolled|Last sequence enrolled|n|sales_properties|ro
hs_latest_sequence_enrolled_date|Last sequence enrolled date|dt|sales_properties|ro
hs_latest_sequence_ended_date|Last sequence ended date|dt|sales_properties|ro
hs_latest_sequence_finished_date|Last sequence finished date|dt|sales_properties|ro
hs_latest_sequence_unenrolled_date|Last sequence unenrolled date|dt|sales_properties|ro
engagements_last_meeting_booked|Date of last meeting booked in meetings tool|dt|sales_properties|ro
engagements_last_meeting_booked_campaign|Campaign of last booking in meetings tool|s|sales_properties|ro
engagements_last_meeting_booked_medium|Medium of last booking in meetings tool|s|sales_properties|ro
engagements_last_meeting_booked_source|Source of last booking in meetings tool|s|sales_properties|ro
hs_lead_status_updated_date|Lead status updated date|dt|sales_properties|ro
hs_predictivescoringtier|Likelihood to close tier|e:score_tier|sales_properties|ro
hs_predictivecontactscore_v2|Likelihood to close|n|sales_properties|ro
hubspotscore|HubSpot Score|n|sales_properties|ro
closedate|Close Date|dt|sales_properties|ro
days_to_close|Days To Close|n|sales_properties|ro
first_deal_created_date|First Deal Created Date|dt|sales_properties|ro
num_associated_deals|Associated Deals|n|sales_properties|ro
recent_deal_amount|Recent Deal Amount|n|sales_properties|ro
recent_deal_close_date|Recent Deal Close Date|dt|sales_properties|ro
total_revenue|Total Revenue|n|sales_properties|ro
hs_first_engagement_object_id|ID of first engagement|n|sales_properties|ro
hs_first_outreach_date|First outreach date|dt|sales_properties|ro
hs_first_closed_order_id|First closed order ID|n|sales_properties|ro
"""

_COMPANIES = """
hs_additional_domains|Additional Domains|s|companyinformation
about_us|About Us|t|companyinformation
founded_year|Year Founded|s|companyinformation
is_public|Is Public|b|companyinformation
type|Type|e:PROSPECT,PARTNER,RESELLER,VENDOR,OTHER|companyinformation
timezone|Time Zone|s|companyinformation
web_technologies|Web Technologies|s|companyinformation
total_money_raised|Total Money Raised|s|companyinformation
hs_country_code|Country/Region Code|s|companyinformation|ro
hs_state_code|State/Region Code|s|companyinformation|ro
address2|Street Address 2|s|companyinformation
fax|Fax Number|s|companyinformation
hs_logo_url|Logo URL|s|companyinformation
hs_ideal_customer_profile|Ideal Customer Profile Tier|e:tier_1,tier_2,tier_3|companyinformation
hs_is_target_account|Target Account|b|companyinformation
hs_target_account|Target Account|e:true,false|companyinformation
hs_target_account_probability|Target Account Probability|n|companyinformation|ro
hs_target_account_recommendation_state|Target account recommendation state|s|companyinformation|ro
hs_target_account_recommendation_snooze_time|Target Account Recommendation Snooze Time|dt|companyinformation|ro
hs_parent_company_id|Parent Company|n|companyinformation|ro
hs_num_child_companies|Number of child companies|n|companyinformation|ro
hs_num_blockers|Number of blockers|n|companyinformation|ro
hs_num_contacts_with_buying_roles|Number of contacts with a buying role|n|companyinformation|ro
hs_num_decision_makers|Number of decision makers|n|companyinformation|ro
hs_lastmodifieddate_sales|Last modified (sales)|dt|companyinformation|ro
hs_avatar_filemanager_key|Avatar FileManager key|s|companyinformation|ro
hs_predictivecontactscore_v2|Likelihood to close|n|companyinformation|ro
num_associated_contacts|Number of Associated Contacts|n|companyinformation|ro
num_associated_deals|Number of Associated Deals|n|companyinformation|ro
first_contact_createdate|First Contact Create Date|dt|companyinformation|ro
first_deal_created_date|First Deal Created Date|dt|companyinformation|ro
recent_deal_amount|Recent Deal Amount|n|companyinformation|ro
recent_deal_close_date|Recent Deal Close Date|dt|companyinformation|ro
total_revenue|Total Revenue|n|companyinformation|ro
hs_total_deal_value|Total open deal value|n|companyinformation|ro
closedate|Close Date|dt|companyinformation|ro
days_to_close|Days to Close|n|companyinformation|ro
hs_analytics_num_page_views|Number of Pageviews|n|analyticsinformation|ro
hs_analytics_num_visits|Number of Sessions|n|analyticsinformation|ro
facebook_company_page|Facebook Company Page|s|socialmediainformation
facebookfans|Facebook Fans|n|socialmediainformation|ro
googleplus_page|Google Plus Page|s|socialmediainformation
linkedin_company_page|LinkedIn Company Page|s|socialmediainformation
linkedinbio|LinkedIn Bio|t|socialmediainformation
twitterhandle|Twitter Handle|s|socialmediainformation
twitterbio|Twitter Bio|t|socialmediainformation|ro
twitterfollowers|Twitter Followers|n|socialmediainformation|ro
hs_sales_email_last_replied|Recent Sales Email Replied Date|dt|sales_properties|ro
engagements_last_meeting_booked|Date of last meeting booked in meetings tool|dt|sales_properties|ro
engagements_last_meeting_booked_campaign|Campaign of last booking in meetings tool|s|sales_properties|ro
engagements_last_meeting_booked_medium|Medium of last booking in meetings tool|s|sales_properties|ro
engagements_last_meeting_booked_source|Source of last booking in meetings tool|s|sales_properties|ro
hs_lead_status|Lead Status|e:lead_status|sales_properties
hs_pipeline|Pipeline|s|companyinformation|ro
"""

_DEALS = """
hs_deal_stage_probability|Deal probability|n|dealinformation|ro
hs_deal_stage_probability_shadow|Deal stage probability shadow|n|dealinformation|ro
hs_forecast_amount|Forecast amount|n|dealinformation|ro
hs_forecast_category|Forecast category|e:OMIT,PIPELINE,BEST_CASE,COMMIT,CLOSED|dealinformation
hs_forecast_probability|Forecast probability|n|dealinformation
hs_manual_forecast_category|Forecast category|e:OMIT,PIPELINE,BEST_CASE,COMMIT,CLOSED|dealinformation
hs_projected_amount|Weighted amount|n|dealinformation|ro
hs_projected_amount_in_home_currency|Weighted amount in company currency|n|dealinformation|ro
amount_in_home_currency|Amount in company currency|n|dealinformation|ro
hs_exchange_rate|Exchange rate|n|dealinformation|ro
hs_closed_amount|Closed Deal Amount|n|dealinformation|ro
hs_closed_amount_in_home_currency|Closed Deal Amount In Home Currency|n|dealinformation|ro
hs_closed_won_count|Closed won count|n|dealinformation|ro
hs_closed_won_date|Closed Won Date (Quarter-Only)|dt|dealinformation|ro
hs_is_closed|Is Deal Closed?|b|dealinformation|ro
hs_is_closed_won|Is Closed Won|b|dealinformation|ro
hs_is_closed_lost|Is closed lost|b|dealinformation|ro
hs_is_deal_split|Deal Split Added|b|dealinformation|ro
hs_is_open_count|Is Open (numeric)|n|dealinformation|ro
hs_is_stalled|Is stalled|b|dealinformation|ro
hs_days_to_close_raw|Days to close (without rounding)|n|dealinformation|ro
days_to_close|Days to close|n|dealinformation|ro
hs_deal_amount_calculation_preference|Deal amount calculation preference|e:MANUAL,LINE_ITEMS|dealinformation
hs_acv|Annual contract value|n|dealinformation|ro
hs_arr|Annual recurring revenue|n|dealinformation|ro
hs_mrr|Monthly recurring revenue|n|dealinformation|ro
hs_tcv|Total contract value|n|dealinformation|ro
hs_line_item_global_term_hs_discount_percentage|Global Term Line Item Discount Percentage|s|dealinformation
hs_line_item_global_term_hs_recurring_billing_period|Global Term Line Item Recurring Billing Period|s|dealinformation
hs_line_item_global_term_recurringbillingfrequency|Global Term Line Item Recurring Billing Frequency|s|dealinformation
hs_num_associated_deal_splits|Number of deal splits|n|dealinformation|ro
hs_num_of_associated_line_items|Number of Associated Line Items|n|dealinformation|ro
hs_num_target_accounts|Number of target accounts|n|dealinformation|ro
num_associated_contacts|Number of Associated Contacts|n|dealinformation|ro
num_contacted_notes|Number of times contacted|n|dealinformation|ro
hs_priority|Priority|e:low,medium,high|dealinformation
hs_next_step|Next step|t|dealinformation
hs_deal_score|Deal Score|n|dealinformation|ro
hs_likelihood_to_close|Likelihood to close by the close date|n|dealinformation|ro
hs_predicted_amount|Predicted amount|n|dealinformation|ro
hs_predicted_amount_in_home_currency|Predicted amount in your company's currency|n|dealinformation|ro
closed_lost_reason|Closed Lost Reason|t|dealinformation
closed_won_reason|Closed Won Reason|t|dealinformation
hs_campaign|HubSpot Campaign|s|dealinformation
hs_tag_ids|Deal Tags|s|dealinformation
hs_date_entered_closedwon|Date entered 'Closed Won (Sales Pipeline)'|dt|dealstages|ro
hs_date_exited_closedwon|Date exited 'Closed Won (Sales Pipeline)'|dt|dealstages|ro
hs_date_entered_closedlost|Date entered 'Closed Lost (Sales Pipeline)'|dt|dealstages|ro
hs_date_exited_closedlost|Date exited 'Closed Lost (Sales Pipeline)'|dt|dealstages|ro
hs_time_in_closedwon|Time in 'Closed Won (Sales Pipeline)'|n|dealstages|ro
hs_time_in_closedlost|Time in 'Closed Lost (Sales Pipeline)'|n|dealstages|ro
hs_v2_date_entered_current_stage|Date entered current stage|dt|dealstages|ro
hs_v2_time_in_current_stage|Time in current stage|dt|dealstages|ro
hs_latest_approval_status|Latest approval status|s|dealinformation|ro
hs_has_empty_conditional_stage_properties|Has empty conditional stage properties|b|dealinformation|ro
hs_deal_registration_mrr|Deal registration MRR|n|dealinformation
engagements_last_meeting_booked|Date of last meeting booked in meetings tool|dt|sales_properties|ro
engagements_last_meeting_booked_campaign|Campaign of last booking in meetings tool|s|sales_properties|ro
engagements_last_meeting_booked_medium|Medium of last booking in meetings tool|s|sales_properties|ro
engagements_last_meeting_booked_source|Source of last booking in meetings tool|s|sales_properties|ro
hs_sales_email_last_replied|Recent Sales Email Replied Date|dt|sales_properties|ro
"""

# Lifecycle stage timing, the same family on contacts and companies (one set of four per stage).
_STAGE_ROWS = "\n".join(
    row
    for stage in _LIFECYCLE
    for row in (
        f"hs_lifecyclestage_{stage}_date|Became a {stage} Date|dt|{{g}}|ro",
        f"hs_date_entered_{stage}|Date entered '{stage} (Lifecycle Stage Pipeline)'|dt|{{g}}|ro",
        f"hs_date_exited_{stage}|Date exited '{stage} (Lifecycle Stage Pipeline)'|dt|{{g}}|ro",
        f"hs_v2_cumulative_time_in_{stage}|Cumulative time in '{stage} (Lifecycle Stage Pipeline)'|n|{{g}}|ro",
    )
)
# Deal stage timing for the default pipeline's open stages.
_DEAL_STAGE_ROWS = "\n".join(
    f"hs_{kind}_{stage}|{kind.replace('_', ' ').title()} {stage}|{'n' if kind == 'time_in' else 'dt'}|dealstages|ro"
    for stage in ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
                  "contractsent")
    for kind in ("date_entered", "date_exited", "time_in")
)


def _parse(rows: str, group: str) -> list[PropertyDef]:
    out = []
    for line in rows.format(g=group, src=_SOURCES).splitlines():
        if not line.strip():
            continue
        name, label, kind, grp, *flags = line.split("|")
        if kind.startswith("e:"):
            values = _OPTIONS.get(kind[2:]) or tuple(kind[2:].split(","))
            options = tuple((v, v.replace("_", " ").title()) for v in values)
            out.append(PropertyDef(name, label, "enumeration", "select", grp, options=options, read_only="ro" in flags,
                                   calculated="ro" in flags))
        else:
            type_, field_type = _KINDS[kind]
            out.append(PropertyDef(name, label, type_, field_type, grp, read_only="ro" in flags,
                                   calculated="ro" in flags))
    return out


def default_properties(object_type: str) -> list[PropertyDef]:
    """The extra defaults of contacts, companies and deals (none for other objects), without duplicates."""
    own = {"contacts": (_CONTACTS + _STAGE_ROWS, "contactinformation"),
           "companies": (_COMPANIES + _STAGE_ROWS, "companyinformation"),
           "deals": (_DEALS + _DEAL_STAGE_ROWS, "dealinformation")}.get(object_type)
    if own is None:
        return []
    rows, group = own
    seen: dict[str, PropertyDef] = {}
    for p in _parse(_SHARED + rows, group):
        seen.setdefault(p.name, p)
    return list(seen.values())
