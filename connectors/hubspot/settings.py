"""HubSpot endpoint constants, limits and default property lists."""

from __future__ import annotations

__all__ = [
    "ASSOCIATIONS",
    "ASSOCIATION_BATCH_LIMIT",
    "BATCH_READ_LIMIT",
    "CURSOR_PROPERTY",
    "DEFAULT_BASE_URL",
    "DEFAULT_LOOKBACK_SECONDS",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_PROPERTIES",
    "DEFAULT_PROPERTIES_URL_BUDGET",
    "DEFAULT_SEARCH_REQUESTS_PER_SECOND",
    "LIST_LIMIT",
    "MINIMAL_PROPERTIES",
    "OBJECT_TYPES",
    "SEARCH_LIMIT",
    "SEARCH_RESULT_CAP",
]

DEFAULT_BASE_URL = "https://api.hubapi.com"

OBJECT_TYPES: tuple[str, ...] = ("contacts", "companies", "deals")

#: property the incremental search filters on (HubSpot names it differently for contacts)
CURSOR_PROPERTY: dict[str, str] = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}

#: associations read (v4 batch) for each page of a stream: from object -> to objects
ASSOCIATIONS: dict[str, tuple[str, ...]] = {
    "contacts": ("companies",),
    "companies": (),
    "deals": ("contacts", "companies"),
}

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
    t: ("hs_object_id", "createdate", CURSOR_PROPERTY[t]) for t in OBJECT_TYPES
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
}
