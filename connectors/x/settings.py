"""X API v2 constants."""

from __future__ import annotations

VENDOR = "x"
DEFAULT_BASE_URL = "https://api.x.com"
SEARCH_PATH = "/2/tweets/search/recent"
#: full-archive search (Pro or Enterprise access): the backfill of a search query's history
ARCHIVE_PATH = "/2/tweets/search/all"
MENTIONS_PATH = "/2/users/{id}/mentions"
#: the most a page may hold on recent search and on the mentions timeline
MAX_RESULTS = 100
#: the most a full-archive search page may hold
ARCHIVE_MAX_RESULTS = 500
#: the earliest start_time full-archive search accepts (``archive_start = all``)
ARCHIVE_FLOOR = "2006-03-21T00:00:01Z"
#: X refuses an end_time less than 10 s before the request: the backfill ends this long before the run start
ARCHIVE_END_LAG_S = 30
#: full-archive search's published pace: 1 request per second per app (a little margin for the clocks)
ARCHIVE_MIN_INTERVAL_S = 1.05
TWEET_FIELDS = "id,text,author_id,created_at,public_metrics,lang,conversation_id,entities,edit_history_tweet_ids"
USER_FIELDS = "id,name,username,created_at,description,location,public_metrics,verified,verified_type,protected"
#: X's rate-limit windows are 15 minutes: a 429 may ask us to wait that long (plus a second of margin)
MAX_RESET_WAIT = 901.0
#: snowflake ids carry their creation time: (id >> 22) + this epoch, in ms
TWITTER_EPOCH_MS = 1288834974657
#: recent search covers 7 days; a slightly shorter bound keeps a since_id near the edge safe
RECENT_WINDOW_MS = 7 * 86_400_000 - 3_600_000
