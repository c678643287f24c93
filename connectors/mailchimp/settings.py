"""Mailchimp Marketing API 3.0 constants."""

from __future__ import annotations

VENDOR = "mailchimp"
#: the real API root; ``{dc}`` is the data centre suffix of the API key (``...-us21``)
API_ROOT_TEMPLATE = "https://{dc}.api.mailchimp.com/3.0"
#: Mailchimp's largest ``count``
MAX_COUNT = 1000
DEFAULT_PAGE_SIZE = 1000
#: Mailchimp refuses the 11th simultaneous connection of an account with 429
MAX_CONNECTIONS = 10
DEFAULT_CONCURRENCY = 4
#: incremental runs re-read this far before the stored cursor (Mailchimp compares whole seconds)
DEFAULT_LOOKBACK_SECONDS = 300
#: email activity actions that become touches (others are kept in the raw record)
ACTIVITY_ACTIONS = ("open", "click", "bounce")
#: campaign statuses that can have email activity
SENT_STATUSES = frozenset({"sent", "sending", "canceled"})
