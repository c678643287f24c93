"""HubSpot endpoint constants, limits and default property lists."""

from __future__ import annotations

__all__ = [
    "ASSOCIATIONS",
    "ASSOCIATION_BATCH_LIMIT",
    "BATCH_READ_LIMIT",
    "CRM_OBJECTS",
    "CURSOR_PROPERTY",
    "DEFAULT_BASE_URL",
    "DEFAULT_LOOKBACK_SECONDS",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_PROPERTIES",
    "DEFAULT_PROPERTIES_URL_BUDGET",
    "DEFAULT_REQUESTS_PER_TEN_SECONDS",
    "DEFAULT_SEARCH_REQUESTS_PER_SECOND",
    "EMAIL_EVENTS_LIMIT",
    "ENGAGEMENTS",
    "FORM_SUBMISSIONS_LIMIT",
    "LIST_LIMIT",
    "MARKETING_EMAILS_LIMIT",
    "MINIMAL_PROPERTIES",
    "OBJECT_TYPES",
    "OWNERS_LIMIT",
    "SEARCH_LIMIT",
    "SEARCH_RESULT_CAP",
]

DEFAULT_BASE_URL = "https://api.hubapi.com"

#: engagements: sales activities, each a CRM object of its own in v3
ENGAGEMENTS: tuple[str, ...] = ("calls", "emails", "meetings", "notes", "tasks")
#: CRM objects read through list (first run) and search (incremental)
CRM_OBJECTS: tuple[str, ...] = ("contacts", "companies", "deals", "line_items", *ENGAGEMENTS)
OBJECT_TYPES = CRM_OBJECTS

#: property the incremental search filters on (HubSpot names it differently for contacts)
CURSOR_PROPERTY: dict[str, str] = {t: "lastmodifieddate" if t == "contacts" else "hs_lastmodifieddate"
                                   for t in CRM_OBJECTS}

#: associations read (v4 batch) for each page of a stream: from object -> to objects
ASSOCIATIONS: dict[str, tuple[str, ...]] = {
    "contacts": ("companies",),
    "companies": (),
    "deals": ("contacts", "companies"),
    "line_items": ("deals",),
    **{e: ("contacts", "companies", "deals") for e in ENGAGEMENTS},
}

#: HubSpot's published limit for the smallest tier (private apps on Free/Starter: 100 per 10 s);
#: the X-HubSpot-RateLimit-* headers of the first answer replace it with the portal's own
DEFAULT_REQUESTS_PER_TEN_SECONDS = 100
#: GET /email/public/v1/events, /form-integrations/v1/submissions/forms/{guid}, /marketing/v3/emails,
#: /crm/v3/owners: max ``limit``
EMAIL_EVENTS_LIMIT = 1000
FORM_SUBMISSIONS_LIMIT = 50
MARKETING_EMAILS_LIMIT = 100
OWNERS_LIMIT = 100

#: GET /crm/v3/objects/{type}: max ``limit``
LIST_LIMIT = 100
DEFAULT_PAGE_SIZE = 100
#: POST /crm/v3/objects/{type}/search: max ``limit`` and the hard cap of results per query
SEARCH_LIMIT = 200
SEARCH_RESULT_CAP = 10_000
#: POST /crm/v3/objects/{type}/batch/read and /crm/v4/associations/{from}/{to}/batch/read: max inputs
BATCH_READ_LIMIT = 100
ASSOCIATION_BATCH_LIMIT = 1_000

DEFAULT_LOOKBACK_SECONDS = 300
#: characters the ``properties=`` part of a list URL may take before switching to batch/read
DEFAULT_PROPERTIES_URL_BUDGET = 12_000
#: HubSpot allows about 5 search requests per second per account; stay below it
DEFAULT_SEARCH_REQUESTS_PER_SECOND = 4.0

#: properties asked for when the full list does not fit in a URL (full values then come from batch/read)
MINIMAL_PROPERTIES: dict[str, tuple[str, ...]] = {
    t: ("hs_object_id", "hs_createdate" if t in ENGAGEMENTS else "createdate", CURSOR_PROPERTY[t])
    for t in CRM_OBJECTS
}

#: used only if property discovery returns nothing (an account with no read access to schemas)
DEFAULT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "contacts": ("email", "firstname", "lastname", "phone", "jobtitle", "company", "lifecyclestage",
                 "hs_lead_status", "hs_analytics_source", "hubspot_owner_id", "city", "state", "country",
                 "createdate", "lastmodifieddate", "hs_object_id"),
    "companies": ("name", "domain", "industry", "numberofemployees", "annualrevenue", "city", "state",
                  "country", "lifecyclestage", "hubspot_owner_id", "createdate", "hs_lastmodifieddate",
                  "hs_object_id"),
    "deals": ("dealname", "amount", "deal_currency_code", "dealstage", "pipeline", "closedate",
              "hs_is_closed", "hs_is_closed_won", "hubspot_owner_id", "createdate", "hs_lastmodifieddate",
              "hs_object_id"),
    "line_items": ("name", "quantity", "price", "amount", "hs_sku", "hs_product_id", "createdate",
                   "hs_lastmodifieddate", "hs_object_id"),
    "calls": ("hs_timestamp", "hs_call_title", "hs_call_body", "hs_call_direction", "hs_call_duration",
              "hs_call_status", "hubspot_owner_id", "hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "emails": ("hs_timestamp", "hs_email_subject", "hs_email_direction", "hs_email_status", "hubspot_owner_id",
               "hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "meetings": ("hs_timestamp", "hs_meeting_title", "hs_meeting_start_time", "hs_meeting_end_time",
                 "hs_meeting_outcome", "hubspot_owner_id", "hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
    "notes": ("hs_timestamp", "hs_note_body", "hubspot_owner_id", "hs_createdate", "hs_lastmodifieddate",
              "hs_object_id"),
    "tasks": ("hs_timestamp", "hs_task_subject", "hs_task_status", "hs_task_priority", "hs_task_type",
              "hubspot_owner_id", "hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
}
