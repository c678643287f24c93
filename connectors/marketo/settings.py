"""Marketo endpoint paths, limits and the activity types each stream reads."""

from __future__ import annotations

__all__ = [
    "ACTIVITIES",
    "ACTIVITY_TYPES",
    "DEFAULT_SINCE",
    "DELETED_LEADS",
    "DESCRIBE",
    "DESCRIBE2",
    "EMAIL_ACTIVITY_TYPES",
    "LEADS",
    "LEAD_CHANGE_TYPES",
    "MAX_ACTIVITY_TYPES",
    "MAX_ASSET_RETURN",
    "MAX_BATCH",
    "MAX_FILTER_VALUES",
    "PAGING_TOKEN",
    "PROGRAMS",
    "PROGRAM_ACTIVITY_TYPES",
    "PROGRAM_MEMBERS",
    "RATE_WINDOW_SECONDS",
    "TOKEN",
    "TOKEN_MARGIN_SECONDS",
    "URL_BUDGET",
]

TOKEN = "/oauth/token"  # under identity_url
DESCRIBE2 = "/v1/leads/describe2.json"  # under endpoint (…/rest)
DESCRIBE = "/v1/leads/describe.json"
LEADS = "/v1/leads.json"
ACTIVITY_TYPES = "/v1/activities/types.json"
PAGING_TOKEN = "/v1/activities/pagingtoken.json"
ACTIVITIES = "/v1/activities.json"
DELETED_LEADS = "/v1/activities/deletedleads.json"
PROGRAMS = "/asset/v1/programs.json"
PROGRAM_MEMBERS = "/v1/programs/{id}/members.json"

#: Marketo's documented limits
MAX_BATCH = 300
MAX_FILTER_VALUES = 300
MAX_ACTIVITY_TYPES = 10
MAX_ASSET_RETURN = 200
RATE_WINDOW_SECONDS = 20.0
#: characters of a GET URL before the request is sent as POST with ``_method=GET`` (Marketo: 8 KB)
URL_BUDGET = 7_000
#: refresh the access token this long before Marketo says it expires
TOKEN_MARGIN_SECONDS = 60.0
#: where a first run's paging token starts: before any lead existed
DEFAULT_SINCE = "2000-01-01T00:00:00Z"

#: activities that change a lead's fields: New Lead, Change Data Value, Email Bounced (emailInvalid),
#: Unsubscribe Email (unsubscribed). The leads stream re-reads the leads they name.
LEAD_CHANGE_TYPES: tuple[int, ...] = (8, 9, 12, 13)
#: Send/Delivered/Bounced/Unsubscribe/Open/Click Email: primaryAttributeValue is "<program>.<email>"
EMAIL_ACTIVITY_TYPES: frozenset[int] = frozenset({6, 7, 8, 9, 10, 11})
#: activities whose primaryAttributeValueId is a program id (Change Status in Progression, Add to Program)
PROGRAM_ACTIVITY_TYPES: frozenset[int] = frozenset({104, 113, 114, 115})
