"""Salesforce constants: API version, default objects, limits and defaults of the settings."""

from __future__ import annotations

__all__ = [
    "BULK_POLL_MAX_SECONDS",
    "COMPOSITE_MAX",
    "COMPOSITE_MAX_QUERIES",
    "CURSOR_FIELD",
    "DEFAULT_API_VERSION",
    "DEFAULT_BULK_RESULT_RECORDS",
    "DEFAULT_BULK_THRESHOLD",
    "DEFAULT_LOOKBACK_SECONDS",
    "DEFAULT_OBJECTS",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_QUOTA_SHARE",
    "DEFAULT_RECONCILE_DELETES_HOURS",
    "DELETED_WINDOW_DAYS",
    "DESCRIBE_MARGIN_SECONDS",
    "EXTRA_OBJECTS_ENV",
    "ID_BATCH",
    "MAX_PAGE_SIZE",
    "MIN_PAGE_SIZE",
    "OBJECT_ENTITIES",
    "PREFETCH_MAX_RECORDS",
    "UNSELECTABLE_TYPES",
    "stream_name",
]

DEFAULT_API_VERSION = "59.0"

#: object -> mapping file under mappings/salesforce/ (empty: raw table only). Streams are named
#: after the object in snake case (``OpportunityContactRole`` -> ``opportunity_contact_role``)
OBJECT_ENTITIES: dict[str, str] = {
    "Lead": "lead.yaml",
    "Contact": "contact.yaml",
    "Account": "account.yaml",
    "Opportunity": "opportunity.yaml",
    "OpportunityContactRole": "",
    "Campaign": "campaign.yaml",
    "CampaignMember": "campaign_member.yaml",
    "Task": "task.yaml",
    "Event": "event.yaml",
    "User": "",
}
DEFAULT_OBJECTS: tuple[str, ...] = tuple(OBJECT_ENTITIES)

#: comma-separated extra objects (custom ``__c`` ones included), read when the connector registers
EXTRA_OBJECTS_ENV = "SOURCES__SALESFORCE__EXTRA_OBJECTS"

CURSOR_FIELD = "SystemModstamp"

#: compound parents (address, geolocation) cannot be selected in Bulk API and duplicate their
#: components; base64 bodies are not returned by query at all
UNSELECTABLE_TYPES = frozenset({"address", "location", "base64"})

#: the Sforce-Query-Options batchSize range Salesforce accepts
MIN_PAGE_SIZE = 200
MAX_PAGE_SIZE = 2000
DEFAULT_PAGE_SIZE = 2000

DEFAULT_LOOKBACK_SECONDS = 300
#: a window holding more records than this is read with a Bulk API 2.0 query job
DEFAULT_BULK_THRESHOLD = 50_000
#: maxRecords of one Bulk API 2.0 results request (streamed; the pages yielded stay page_size)
DEFAULT_BULK_RESULT_RECORDS = 50_000
BULK_POLL_MAX_SECONDS = 3_600.0
#: stop once this share of the org's daily API requests is used (Sforce-Limit-Info)
DEFAULT_QUOTA_SHARE = 0.9
#: how often the deleted endpoint is asked for hard deletes (0: every incremental run)
DEFAULT_RECONCILE_DELETES_HOURS = 24.0
#: the deleted/updated endpoints serve the last 30 days; stay inside
DELETED_WINDOW_DAYS = 29
#: Composite resource: subrequests per call, and how many of them may be query operations (query,
#: queryAll, query more). The whole composite counts as ONE call toward the API limits.
COMPOSITE_MAX = 25
COMPOSITE_MAX_QUERIES = 5
#: records of further incremental pages read ahead in composite calls (query more) for all objects
#: together; past it each object pages on its own (bounds what is held before its stream reads it)
PREFETCH_MAX_RECORDS = 20_000
#: If-Modified-Since is sent this long before the stored describe time (clock skew; whole seconds)
DESCRIBE_MARGIN_SECONDS = 60
#: ids per ``Id IN (...)`` query (keeps the URL short)
ID_BATCH = 200


def stream_name(obj: str) -> str:
    """``OpportunityContactRole`` -> ``opportunity_contact_role``; custom ``Project__c`` -> ``project__c``.

    Raw tables are ``salesforce__<stream>`` (``salesforce__lead``), as mappings/definitions.yaml reads them.
    """
    out: list[str] = []
    for i, ch in enumerate(obj):
        if ch.isupper() and i and (obj[i - 1].islower() or obj[i - 1].isdigit()):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
