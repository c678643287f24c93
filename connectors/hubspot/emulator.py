"""HubSpot emulator for the sandbox: CRM v3 objects, search, batch read, properties, pipelines and
v4 associations, in HubSpot's wire format, over the shared sandbox world.

Mounted by the sandbox on its own port; point ``HubSpot(access_token=..., host=base_url)`` or the
connector's ``base_url`` setting at it. The world's people are contacts, its companies are
companies and its deals are deals. Ids: contacts ``1000 + i``, companies ``2000000000 + i``, deals
``3000000000 + i`` (all offsets are multiples of 100, so the ~1% of records a tick changes are the
ids congruent to the tick's residue modulo 100).
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from connectors.hubspot.emulator_marketing import HubSpotError as _HubSpotError
from connectors.hubspot.emulator_marketing import Marketing, merged_ids, merged_survivor
from connectors.hubspot.emulator_objects import (
    ASSOC_TYPE_IDS,
    CUSTOM_PIPELINE,
    DERIVED,
    PROPERTY_DEFS,
    View,
    custom_stage,
    derived_links,
    derived_props,
    in_custom_pipeline,
    pipelines,
)
from sandbox.faults import FaultRule
from sandbox.protocol import Emulator, EmulatorOptions, EmulatorSpec, Request, Response
from sandbox.readahead import ReadAhead
from sandbox.routing import Routes
from sandbox.world import (
    DEAL_STAGES,
    LIFECYCLE_STAGES,
    OWNERS,
    Company,
    Deal,
    Person,
    World,
    format_ms,
    parse_time,
)

__all__ = ["ACCESS_TOKEN", "RATE_LIMIT_ENV", "HubSpotEmulator", "emulator_spec"]

ACCESS_TOKEN = "sandbox-hubspot-pat-na1-0000"
PUBLIC_BASE = "https://api.hubapi.com"
#: HubSpot answers 414 above roughly this many characters in the request line
MAX_URL = 15_000
SEARCH_CAP = 10_000
DAILY_LIMIT = 500_000
TEN_SECONDLY = 190
SEARCH_PER_SECOND = 5
#: ``<requests>/<milliseconds>`` replaces the rolling window of 190 / 10,000 ms (a test of pacing
#: against a window of a second runs in seconds); headers report the window served
RATE_LIMIT_ENV = "FACTORYLINE_SANDBOX_HUBSPOT_RATE_LIMIT"
_EPOCH_ISO = "2020-01-01T00:00:00.000Z"

Props = dict[str, str | None]


def emulator_spec() -> EmulatorSpec:
    """The HubSpot emulator, for a ``register_emulators`` hook implementation."""
    return EmulatorSpec(name="hubspot", factory=HubSpotEmulator,
                        description="HubSpot CRM v3/v4 (contacts, companies, deals, search, associations)",
                        notes={"sdk": "HubSpot(access_token=settings['access_token'], host=settings['base_url'])"})


# -------------------------------------------------------------------------------------------
# objects and their properties
# -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ObjectType:
    name: str  # plural, as in the URL
    singular: str
    type_id: str  # "0-1"
    space: str  # world space name
    offset: int
    modified_prop: str
    default_props: tuple[str, ...]
    #: derived objects: each parent record of ``space`` has ``fanout`` of them
    fanout: int = 1
    created_prop: str = "createdate"


_TYPES = {
    "contacts": _ObjectType("contacts", "contact", "0-1", "people", 1000, "lastmodifieddate",
                            ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname")),
    "companies": _ObjectType("companies", "company", "0-2", "companies", 2_000_000_000, "hs_lastmodifieddate",
                             ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name")),
    "deals": _ObjectType("deals", "deal", "0-3", "deals", 3_000_000_000, "hs_lastmodifieddate",
                         ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
                          "hs_object_id", "pipeline")),
    "line_items": _ObjectType("line_items", "line_item", "0-8", "deals", 5_000_000_000, "hs_lastmodifieddate",
                              ("createdate", "hs_lastmodifieddate", "hs_object_id", "name", "price", "quantity"),
                              fanout=DERIVED["line_items"][1]),
    **{name: _ObjectType(name, name[:-1], type_id, DERIVED[name][0], offset, "hs_lastmodifieddate",
                         ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"), fanout=DERIVED[name][1],
                         created_prop="hs_createdate")
       for name, type_id, offset in (("calls", "0-48", 6_000_000_000), ("emails", "0-49", 7_000_000_000),
                                     ("meetings", "0-47", 8_000_000_000), ("notes", "0-46", 9_000_000_000),
                                     ("tasks", "0-27", 10_000_000_000))},
}
_ALIASES = {alias: t for t in _TYPES.values() for alias in (t.name, t.singular, t.type_id)}

#: (name, label, type, fieldType, group, hubspotDefined, options)
_PropDef = tuple[str, str, str, str, str, bool, tuple[str, ...]]
_STAGE_DATE_PROPS = tuple(f"hs_lifecyclestage_{s}_date" for s in LIFECYCLE_STAGES)
_STAGE_POS = {s: n for n, s in enumerate(LIFECYCLE_STAGES)}
_OWNER_IDS = {o: str(o) for o in OWNERS}
_N_STAGES = len(LIFECYCLE_STAGES)
assert _N_STAGES == 8  # _contact writes the stage dates by position
_SOURCE_DRILLDOWN = {s: s.lower().replace("_", " ") for s in (
    "ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA", "REFERRALS", "OTHER_CAMPAIGNS",
    "DIRECT_TRAFFIC", "OFFLINE", "PAID_SOCIAL")}
_PROPERTY_DEFS: dict[str, tuple[_PropDef, ...]] = {
    "contacts": (
        ("hs_object_id", "Record ID", "number", "number", "contactinformation", True, ()),
        ("createdate", "Create Date", "datetime", "date", "contactinformation", True, ()),
        ("lastmodifieddate", "Last Modified Date", "datetime", "date", "contactinformation", True, ()),
        ("email", "Email", "string", "text", "contactinformation", True, ()),
        ("firstname", "First Name", "string", "text", "contactinformation", True, ()),
        ("lastname", "Last Name", "string", "text", "contactinformation", True, ()),
        ("phone", "Phone Number", "string", "phonenumber", "contactinformation", True, ()),
        ("mobilephone", "Mobile Phone Number", "string", "phonenumber", "contactinformation", True, ()),
        ("company", "Company Name", "string", "text", "contactinformation", True, ()),
        ("jobtitle", "Job Title", "string", "text", "contactinformation", True, ()),
        ("website", "Website URL", "string", "text", "contactinformation", True, ()),
        ("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "contactinformation", True, LIFECYCLE_STAGES),
        ("hs_lead_status", "Lead Status", "enumeration", "radio", "sales_properties", True,
         ("NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED", "ATTEMPTED_TO_CONTACT", "CONNECTED",
          "BAD_TIMING")),
        ("city", "City", "string", "text", "contactinformation", True, ()),
        ("state", "State/Region", "string", "text", "contactinformation", True, ()),
        ("country", "Country/Region", "string", "text", "contactinformation", True, ()),
        ("hubspot_owner_id", "Contact owner", "enumeration", "select", "sales_properties", True,
         tuple(str(o) for o in OWNERS)),
        ("hs_analytics_source", "Original Source", "enumeration", "select", "analyticsinformation", True,
         ("ORGANIC_SEARCH", "PAID_SEARCH", "EMAIL_MARKETING", "SOCIAL_MEDIA", "REFERRALS", "OTHER_CAMPAIGNS",
          "DIRECT_TRAFFIC", "OFFLINE", "PAID_SOCIAL")),
        ("hs_analytics_source_data_1", "Original Source Drill-Down 1", "string", "text", "analyticsinformation",
         True, ()),
        ("associatedcompanyid", "Primary Associated Company ID", "number", "number", "contactinformation", True,
         ()),
        ("num_associated_deals", "Number of Associated Deals", "number", "number", "deal_information", True, ()),
        ("hs_email_domain", "Email Domain", "string", "text", "emailinformation", True, ()),
        *((p, f"Became a {s} Date", "datetime", "date", "contactinformation", True, ())
          for p, s in zip(_STAGE_DATE_PROPS, LIFECYCLE_STAGES, strict=True)),
        ("hs_merged_object_ids", "Merged Contact IDs", "enumeration", "checkbox", "contactinformation", True, ()),
        ("factory_lead_score", "Factory lead score", "number", "number", "factoryline", False, ()),
        ("preferred_channel", "Preferred channel", "enumeration", "select", "factoryline", False,
         ("email", "phone", "linkedin", "events", "webinar")),
    ),
    "companies": (
        ("hs_object_id", "Record ID", "number", "number", "companyinformation", True, ()),
        ("createdate", "Create Date", "datetime", "date", "companyinformation", True, ()),
        ("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "companyinformation", True, ()),
        ("name", "Name", "string", "text", "companyinformation", True, ()),
        ("domain", "Company Domain Name", "string", "text", "companyinformation", True, ()),
        ("website", "Website URL", "string", "text", "companyinformation", True, ()),
        ("industry", "Industry", "enumeration", "select", "companyinformation", True, ()),
        ("numberofemployees", "Number of Employees", "number", "number", "companyinformation", True, ()),
        ("annualrevenue", "Annual Revenue", "number", "number", "companyinformation", True, ()),
        ("city", "City", "string", "text", "companyinformation", True, ()),
        ("state", "State/Region", "string", "text", "companyinformation", True, ()),
        ("country", "Country/Region", "string", "text", "companyinformation", True, ()),
        ("phone", "Phone Number", "string", "phonenumber", "companyinformation", True, ()),
        ("hubspot_owner_id", "Company owner", "enumeration", "select", "companyinformation", True, ()),
        ("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "companyinformation", True, LIFECYCLE_STAGES),
        ("num_associated_contacts", "Number of Associated Contacts", "number", "number", "companyinformation",
         True, ()),
        ("factory_tier", "Factory account tier", "enumeration", "select", "factoryline", False,
         ("tier_1", "tier_2", "tier_3")),
        ("factory_region", "Factory sales region", "string", "text", "factoryline", False, ()),
    ),
    "deals": (
        ("hs_object_id", "Record ID", "number", "number", "dealinformation", True, ()),
        ("createdate", "Create Date", "datetime", "date", "dealinformation", True, ()),
        ("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "dealinformation", True, ()),
        ("dealname", "Deal Name", "string", "text", "dealinformation", True, ()),
        ("amount", "Amount", "number", "number", "dealinformation", True, ()),
        ("deal_currency_code", "Currency", "enumeration", "select", "dealinformation", True, ("USD", "EUR", "GBP")),
        ("dealstage", "Deal Stage", "enumeration", "radio", "dealinformation", True,
         (*(s[0] for s in DEAL_STAGES), *(custom_stage(s[0]) for s in DEAL_STAGES))),
        ("pipeline", "Pipeline", "enumeration", "select", "dealinformation", True, ("default", CUSTOM_PIPELINE)),
        ("closedate", "Close Date", "datetime", "date", "dealinformation", True, ()),
        ("hubspot_owner_id", "Deal owner", "enumeration", "select", "dealinformation", True, ()),
        ("dealtype", "Deal Type", "enumeration", "radio", "dealinformation", True,
         ("newbusiness", "existingbusiness")),
        ("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox", "dealinformation", True, ("true", "false")),
        ("hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox", "dealinformation", True, ("true", "false")),
        ("hs_deal_stage_probability", "Deal Stage Probability", "number", "number", "dealinformation", True, ()),
        ("num_associated_contacts", "Number of Associated Contacts", "number", "number", "dealinformation", True,
         ()),
        ("factory_product_line", "Factory product line", "enumeration", "select", "factoryline", False,
         ("platform", "services", "addons")),
        ("factory_partner", "Factory partner involved", "bool", "booleancheckbox", "factoryline", False,
         ("true", "false")),
    ),
    **PROPERTY_DEFS,
}
_PROP_NAMES = {t: tuple(d[0] for d in defs) for t, defs in _PROPERTY_DEFS.items()}
_PROP_KIND = {t: {d[0]: d[2] for d in defs} for t, defs in _PROPERTY_DEFS.items()}
_STAGE_PROB = {s[0]: s[2] for s in DEAL_STAGES}
_STAGE_CLOSED = {s[0]: s[3] for s in DEAL_STAGES}

#: (from, to) -> [(typeId, label, category, "primary"|"unlabeled"|"custom")]
_ASSOC_TYPES: dict[tuple[str, str], tuple[tuple[int, str | None, str], ...]] = {
    ("contacts", "companies"): ((1, "Primary", "HUBSPOT_DEFINED"), (279, None, "HUBSPOT_DEFINED"),
                                (101, "Decision maker", "USER_DEFINED")),
    ("companies", "contacts"): ((2, "Primary", "HUBSPOT_DEFINED"), (280, None, "HUBSPOT_DEFINED"),
                                (102, "Decision maker", "USER_DEFINED")),
    ("deals", "contacts"): ((3, None, "HUBSPOT_DEFINED"),),
    ("contacts", "deals"): ((4, None, "HUBSPOT_DEFINED"),),
    ("deals", "companies"): ((5, "Primary", "HUBSPOT_DEFINED"), (341, None, "HUBSPOT_DEFINED")),
    ("companies", "deals"): ((6, "Primary", "HUBSPOT_DEFINED"), (342, None, "HUBSPOT_DEFINED")),
    **{pair: ((type_id, None, "HUBSPOT_DEFINED"),) for pair, type_id in ASSOC_TYPE_IDS.items()},
}


def _type_rows(types: tuple[tuple[int, str | None, str], ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    rows = [{"category": c, "typeId": i, "label": label} for i, label, c in types]
    return rows[:2], rows if len(rows) > 2 else None


#: v4 ``associationTypes`` of a pair: (without, with the user-defined label of some pairs)
_ASSOC_TYPE_ROWS = {pair: _type_rows(types) for pair, types in _ASSOC_TYPES.items()}
_V3_ASSOC_NAMES = {("contacts", "companies"): "contact_to_company", ("companies", "contacts"): "company_to_contact",
                   ("deals", "contacts"): "deal_to_contact", ("contacts", "deals"): "contact_to_deal",
                   ("deals", "companies"): "deal_to_company", ("companies", "deals"): "company_to_deal"}


#: _wanted's answers: (type, requested items...) -> property names
_WANTED_CACHE: dict[tuple[str, ...], tuple[str, ...]] = {}


class _PageKey(NamedTuple):
    type: str
    start: int
    limit: int
    archived: bool
    wanted: tuple[str, ...]
    assoc: tuple[str, ...]
    tick: int


def _error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category,
            **extra}


def _s(v: object) -> str | None:
    return None if v is None else str(v)


def _dt(ms: int | None) -> str | None:
    return None if ms is None else format_ms(ms)


# -------------------------------------------------------------------------------------------
# rate limits
# -------------------------------------------------------------------------------------------


def _window_from_env() -> tuple[int, float]:
    """(requests, seconds) of the rolling window: ``RATE_LIMIT_ENV`` or HubSpot's 190 per 10 s."""
    value = os.environ.get(RATE_LIMIT_ENV, "").strip()
    if not value:
        return TEN_SECONDLY, 10.0
    try:
        requests, _, ms = value.partition("/")
        window = int(requests), int(ms) / 1000.0
    except ValueError:
        raise ValueError(f"{RATE_LIMIT_ENV} must be <requests>/<milliseconds>, got {value!r}") from None
    if window[0] < 1 or window[1] <= 0:
        raise ValueError(f"{RATE_LIMIT_ENV} must be positive, got {value!r}")
    return window


class _RateLimiter:
    """HubSpot's published limits: 190 requests / 10 s rolling, search 5 / s, a daily quota.

    ``RATE_LIMIT_ENV`` sets another rolling window. Every request the limiter lets through is
    counted in the window, as HubSpot does; a refused one is not.
    """

    def __init__(self, enforce: bool) -> None:
        self.enforce = enforce
        self.max, self.interval = _window_from_env()
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._search: deque[float] = deque()
        self._daily = 0

    def check(self, search: bool) -> tuple[dict[str, str], str | None]:
        """Headers for this response, and the policy that refused it (``None`` if allowed)."""
        now = time.monotonic()
        refused: str | None = None
        with self._lock:
            w = self._window
            while w and now - w[0] >= self.interval:
                w.popleft()
            if search:
                s = self._search
                while s and now - s[0] >= 1:
                    s.popleft()
            if self.enforce:
                if self._daily >= DAILY_LIMIT:
                    refused = "DAILY"
                elif len(w) >= self.max:
                    refused = "TEN_SECONDLY_ROLLING"
                elif search and len(self._search) >= SEARCH_PER_SECOND:
                    refused = "SECONDLY"
            if refused is None:
                w.append(now)
                self._daily += 1
                if search:
                    self._search.append(now)
            headers = {
                "X-HubSpot-RateLimit-Daily": str(DAILY_LIMIT),
                "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, DAILY_LIMIT - self._daily)),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(round(self.interval * 1000)),
                "X-HubSpot-RateLimit-Max": str(self.max),
                "X-HubSpot-RateLimit-Remaining": str(max(0, self.max - len(w))),
            }
            if refused is not None:
                headers["Retry-After"] = "1" if refused != "DAILY" else "3600"
        return headers, refused


_RATE_MESSAGES = {"TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
                  "SECONDLY": "You have reached your secondly limit.",
                  "DAILY": "You have reached your daily limit."}


def _rate_limit_body(policy: str) -> dict[str, Any]:
    return {"status": "error", "message": _RATE_MESSAGES[policy], "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()), "policyName": policy}


# -------------------------------------------------------------------------------------------
# the emulator
# -------------------------------------------------------------------------------------------

_ROUTE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("GET", r"^/crm/v3/objects/(?P<type>[^/]+)/?$", "list"),
    ("POST", r"^/crm/v3/objects/(?P<type>[^/]+)/search/?$", "search"),
    ("POST", r"^/crm/v3/objects/(?P<type>[^/]+)/batch/read/?$", "batch_read"),
    ("GET", r"^/crm/v3/objects/(?P<type>[^/]+)/(?P<id>[^/]+)/?$", "get"),
    ("GET", r"^/crm/v3/properties/(?P<type>[^/]+)/?$", "properties"),
    ("GET", r"^/crm/v3/pipelines/(?P<type>[^/]+)/?$", "pipelines"),
    ("GET", r"^/crm/v3/pipelines/(?P<type>[^/]+)/(?P<pipeline>[^/]+)/?$", "pipeline"),
    ("POST", r"^/crm/v4/associations/(?P<type>[^/]+)/(?P<to>[^/]+)/batch/read/?$", "assoc_batch"),
    ("GET", r"^/crm/v4/objects/(?P<type>[^/]+)/(?P<id>[^/]+)/associations/(?P<to>[^/]+)/?$", "assoc_get"),
    ("GET", r"^/crm/v3/owners/?$", "owners"),
    ("GET", r"^/email/public/v1/events/?$", "email_events"),
    ("GET", r"^/marketing/v3/forms/?$", "forms"),
    ("GET", r"^/form-integrations/v1/submissions/forms/(?P<guid>[^/]+)/?$", "form_submissions"),
    ("GET", r"^/marketing/v3/emails/?$", "marketing_emails"),
)
_TEMPLATES = {
    "list": "GET /crm/v3/objects/{type}", "search": "POST /crm/v3/objects/{type}/search",
    "batch_read": "POST /crm/v3/objects/{type}/batch/read", "get": "GET /crm/v3/objects/{type}/{id}",
    "properties": "GET /crm/v3/properties/{type}", "pipelines": "GET /crm/v3/pipelines/{type}",
    "pipeline": "GET /crm/v3/pipelines/{type}/{pipelineId}",
    "assoc_batch": "POST /crm/v4/associations/{from}/{to}/batch/read",
    "assoc_get": "GET /crm/v4/objects/{from}/{id}/associations/{to}", "owners": "GET /crm/v3/owners",
    "email_events": "GET /email/public/v1/events", "forms": "GET /marketing/v3/forms",
    "form_submissions": "GET /form-integrations/v1/submissions/forms/{guid}",
    "marketing_emails": "GET /marketing/v3/emails",
}
_ROUTES = Routes(*((m, p, name, _TEMPLATES[name]) for m, p, name in _ROUTE_ROWS))


class HubSpotEmulator(Emulator):
    def __init__(self, world: World, options: EmulatorOptions) -> None:
        self.world = world
        self.limiter = _RateLimiter(options.rate_limits)
        self._search_cache: OrderedDict[bytes, list[int]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._company_cache: dict[int, tuple[str, str, str]] = {}
        #: list pages are computed one ahead, so serving overlaps the client's parsing
        self._pages: ReadAhead[_PageKey, tuple[bytes, int, int | None]] = ReadAhead(self._list_body)
        self._builders: dict[str, Callable[[int, int], tuple[Props, int, int, int | None]]] = {
            "contacts": self._contact, "companies": self._company, "deals": self._deal,
            **{name: self._derived(name) for name in DERIVED}}
        self._views = {t.name: View(world, world.space(t.space), t.fanout) for t in _TYPES.values()}
        self.marketing = Marketing(world)

    # -- Emulator protocol -----------------------------------------------------------------------

    def close(self) -> None:
        self._pages.close()

    def settings(self, base_url: str) -> dict[str, str]:
        return {"base_url": base_url, "access_token": ACCESS_TOKEN}

    def _match(self, request: Request) -> tuple[str, dict[str, str]] | None:
        return _ROUTES.match(request)

    def route(self, request: Request) -> str:
        return _ROUTES.route(request)

    def fault_response(self, rule: FaultRule, request: Request) -> Response:
        headers, _ = self.limiter.check(False)
        if rule.kind == "rate_limit":
            headers["Retry-After"] = f"{rule.retry_after:g}"
            # a Retry-After of an hour or more can only be the daily quota (it resets at midnight)
            policy = "DAILY" if rule.retry_after >= 3600 else "TEN_SECONDLY_ROLLING"
            if policy == "DAILY":
                headers["X-HubSpot-RateLimit-Daily-Remaining"] = "0"
            return Response(429, _rate_limit_body(policy), headers)
        if rule.kind == "expired_token":
            return Response(401, _error_body("The OAuth token used to make this call expired 2 minute(s) ago.",
                                             "EXPIRED_AUTHENTICATION", context={}), headers)
        return Response(rule.status, _error_body("internal error", "INTERNAL_ERROR"), headers)

    def corrupt(self, response: Response, kind: str, rng: random.Random) -> Response:
        if isinstance(response.body, bytes):  # a list page, encoded ahead
            response.body = orjson.loads(response.body)
        body = response.body
        records: list[Any] = []
        if isinstance(body, dict):
            results = body.get("results")
            records = results if isinstance(results, list) and results else [body]
        target = records[rng.randrange(len(records))] if records else None
        if isinstance(target, dict) and "properties" in target:
            if kind == "missing_id":
                target.pop("id", None)
                target["properties"].pop("hs_object_id", None)
            else:
                for prop in ("lastmodifieddate", "hs_lastmodifieddate"):
                    if prop in target["properties"]:
                        target["properties"][prop] = "31/02/2026 25:61"
                target["updatedAt"] = "2026-02-31T25:61:00.000Z"
        return response

    def handle(self, request: Request) -> Response:
        search = request.path.endswith("/search")
        headers, refused = self.limiter.check(search)
        if refused is not None:
            return Response(429, _rate_limit_body(refused), headers)
        try:
            if len(request.target) > MAX_URL:
                return Response(414, b"<html>\r\n<head><title>414 Request-URI Too Large</title></head>\r\n"
                                     b"<body>\r\n<center><h1>414 Request-URI Too Large</h1></center>\r\n"
                                     b"</body>\r\n</html>\r\n", headers, content_type="text/html")
            self._authenticate(request)
            found = self._match(request)
            if found is None:
                raise _HubSpotError(404, f"No route for {request.method} {request.path}", "OBJECT_NOT_FOUND")
            name, params = found
            resp: Response = getattr(self, f"_{name}")(request, **params)
        except _HubSpotError as exc:
            resp = Response(exc.status, _error_body(exc.message, exc.category, **exc.extra))
        except (ValueError, TypeError, KeyError, AttributeError, orjson.JSONDecodeError) as exc:
            resp = Response(400, _error_body(f"Invalid input JSON on line 1: {exc}", "VALIDATION_ERROR"))
        resp.headers.update(headers)
        return resp

    # -- helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _authenticate(request: Request) -> None:
        auth = request.headers.get("authorization", "")
        if not auth:
            raise _HubSpotError(401, "Authentication credentials not found. This API supports OAuth 2.0 "
                                     "authentication and you can find more details at "
                                     "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                                "INVALID_AUTHENTICATION")
        if auth != f"Bearer {ACCESS_TOKEN}":
            raise _HubSpotError(401, "Authentication credentials not found. The access token is invalid or "
                                     "has been revoked.", "INVALID_AUTHENTICATION")

    @staticmethod
    def _type(name: str) -> _ObjectType:
        t = _ALIASES.get(name.lower())
        if t is None:
            raise _HubSpotError(400, f"Unable to infer object type from: {name}", "VALIDATION_ERROR",
                                subCategory="CrmObjectTypeError.OBJECT_TYPE_NOT_FOUND")
        return t

    def _idx(self, t: _ObjectType, raw: object, tick: int) -> int | None:
        try:
            idx = int(str(raw)) - t.offset
        except ValueError:
            return None
        return idx if 0 <= idx < self._views[t.name].count(tick) else None

    @staticmethod
    def _wanted(t: _ObjectType, raw: Iterable[str] | None) -> tuple[str, ...]:
        if not raw:
            return t.default_props
        # a reader asks every page for the same properties: remember the last few answers
        key = (t.name, *map(str, raw))
        hit = _WANTED_CACHE.get(key)
        if hit is None:
            hit = HubSpotEmulator._wanted_uncached(t, key[1:])
            if len(_WANTED_CACHE) >= 64:
                _WANTED_CACHE.clear()
            _WANTED_CACHE[key] = hit
        return hit

    @staticmethod
    def _wanted_uncached(t: _ObjectType, raw: tuple[str, ...]) -> tuple[str, ...]:
        names: list[str] = []
        for item in raw:
            names.extend(p.strip() for p in str(item).split(",") if p.strip())
        known = _PROP_KIND[t.name]
        requested = [n for n in names if n in known]
        if not requested:
            return t.default_props
        # HubSpot always answers with the id, creation and modification dates
        picked = tuple(dict.fromkeys([*requested, t.created_prop, "hs_object_id", t.modified_prop]))
        return _PROP_NAMES[t.name] if set(picked) == set(_PROP_NAMES[t.name]) else picked

    def _record(self, t: _ObjectType, idx: int, tick: int, wanted: tuple[str, ...]) -> dict[str, Any]:
        props, _, _, archived = self._builders[t.name](idx, tick)
        rec: dict[str, Any] = {"id": props["hs_object_id"], "properties": props, "createdAt": props[t.created_prop],
                               "updatedAt": props[t.modified_prop], "archived": archived is not None}
        if wanted is not _PROP_NAMES[t.name]:
            rec["properties"] = {p: props.get(p) for p in wanted}
        if archived is not None:
            rec["archivedAt"] = format_ms(archived)
        return rec

    # -- object builders: (properties, created ms, modified ms, archived ms) -------------------

    def _contact(self, idx: int, tick: int) -> tuple[Props, int, int, int | None]:
        # hot (every contacts page): one dict literal in the served key order, each distinct
        # timestamp formatted once (a journey's first and last stage dates are the creation and
        # last-edit times), the stage dates by position
        w = self.world
        p: Person = w.person(idx, tick)
        j = p.company_idx
        company_name: str | None = None
        website: str | None = None
        company_id: str | None = None
        if j is not None:
            company_name, website, company_id = self._company_strings(j)
        created, modified = p.created_ms, p.modified_ms
        created_s, modified_s = format_ms(created), format_ms(modified)
        stage: list[str | None] = [None] * _N_STAGES
        for name, ms in p.stage_dates.items():
            stage[_STAGE_POS[name]] = created_s if ms == created else modified_s if ms == modified \
                else format_ms(ms)
        email = p.email
        merged = merged_ids(w.seed, idx)
        props: Props = {
            "hs_object_id": str(1000 + idx), "createdate": created_s, "lastmodifieddate": modified_s,
            "email": email, "firstname": p.first_name, "lastname": p.last_name, "phone": p.phone,
            "mobilephone": None, "company": company_name, "jobtitle": p.job_title, "website": website,
            "lifecyclestage": p.lifecycle_stage, "hs_lead_status": p.lead_status, "city": p.city,
            "state": p.state, "country": p.country, "hubspot_owner_id": _OWNER_IDS[p.owner_id],
            "hs_analytics_source": p.source, "hs_analytics_source_data_1": _SOURCE_DRILLDOWN[p.source],
            "associatedcompanyid": company_id,
            "num_associated_deals": "1" if w.deals_of_person(idx, tick) else "0",
            "hs_email_domain": email.rsplit("@", 1)[-1].strip().lower() if email else None,
            "hs_merged_object_ids": ";".join(map(str, merged)) if merged else None,
            "factory_lead_score": str(p.lead_score), "preferred_channel": p.preferred_channel,
            _STAGE_DATE_PROPS[0]: stage[0], _STAGE_DATE_PROPS[1]: stage[1], _STAGE_DATE_PROPS[2]: stage[2],
            _STAGE_DATE_PROPS[3]: stage[3], _STAGE_DATE_PROPS[4]: stage[4], _STAGE_DATE_PROPS[5]: stage[5],
            _STAGE_DATE_PROPS[6]: stage[6], _STAGE_DATE_PROPS[7]: stage[7],
        }
        return props, created, modified, p.archived_ms

    def _company_strings(self, j: int) -> tuple[str, str, str]:
        """(name, website, id) of company ``j``; people of one company are neighbours, so cache a few."""
        cached = self._company_cache.get(j)
        if cached is None:
            cached = (self.world._company_name(j)[0], "https://www." + self.world._company_domain(j),
                      str(_TYPES["companies"].offset + j))
            if len(self._company_cache) > 4096:
                self._company_cache.clear()
            self._company_cache[j] = cached
        return cached

    def _company(self, j: int, tick: int) -> tuple[Props, int, int, int | None]:
        c: Company = self.world.company(j, tick)
        props: Props = {
            "hs_object_id": str(2_000_000_000 + j), "createdate": format_ms(c.created_ms),
            "hs_lastmodifieddate": format_ms(c.modified_ms), "name": c.name, "domain": c.domain,
            "website": f"https://www.{c.domain}", "industry": c.industry, "numberofemployees": _s(c.employees),
            "annualrevenue": _s(c.annual_revenue), "city": c.city, "state": c.state, "country": c.country,
            "phone": c.phone, "hubspot_owner_id": str(c.owner_id), "lifecyclestage": c.lifecycle_stage,
            "num_associated_contacts": str(len(self.world.people_of_company(j, tick))),
            "factory_tier": None if c.employees is None else
            "tier_1" if c.employees >= 500 else "tier_2" if c.employees >= 50 else "tier_3",
            "factory_region": None if c.country is None else
            "NA" if c.country in ("United States", "Canada") else "APAC" if c.country in
            ("Australia", "Singapore", "Japan") else "LATAM" if c.country == "Brazil" else "EMEA",
        }
        return props, c.created_ms, c.modified_ms, c.archived_ms

    def _deal(self, d: int, tick: int) -> tuple[Props, int, int, int | None]:
        x: Deal = self.world.deal(d, tick)
        closed = _STAGE_CLOSED[x.stage]
        props: Props = {
            "hs_object_id": str(3_000_000_000 + d), "createdate": format_ms(x.created_ms),
            "hs_lastmodifieddate": format_ms(x.modified_ms), "dealname": x.name, "amount": _s(x.amount),
            "deal_currency_code": "USD",
            "dealstage": custom_stage(x.stage) if in_custom_pipeline(d) else x.stage,
            "pipeline": CUSTOM_PIPELINE if in_custom_pipeline(d) else x.pipeline,
            "closedate": _dt(x.close_ms), "hubspot_owner_id": str(x.owner_id), "dealtype": x.deal_type,
            "hs_is_closed": "true" if closed else "false",
            "hs_is_closed_won": "true" if x.stage == "closedwon" else "false",
            "hs_deal_stage_probability": f"{_STAGE_PROB[x.stage]:g}", "num_associated_contacts": "1",
            "factory_product_line": ("platform", "services", "addons")[d % 3],
            "factory_partner": "true" if d % 7 == 0 else "false",
        }
        return props, x.created_ms, x.modified_ms, x.archived_ms

    def _derived(self, name: str) -> Callable[[int, int], tuple[Props, int, int, int | None]]:
        t = _TYPES[name]

        def build(idx: int, tick: int) -> tuple[Props, int, int, int | None]:
            props, created, modified, archived = derived_props(self.world, name, idx, tick)
            props["hs_object_id"] = str(t.offset + idx)
            return props, created, modified, archived

        return build

    # -- CRM v3 objects --------------------------------------------------------------------------

    def _list(self, request: Request, type: str) -> Response:
        t = self._type(type)
        limit = int(request.arg("limit") or 10)
        if not 1 <= limit <= 100:
            raise _HubSpotError(400, f"limit must be between 1 and 100, got {limit}", "VALIDATION_ERROR")
        after = request.arg("after")
        start = 0 if not after else max(0, int(after) - t.offset)
        archived = (request.arg("archived") or "false").lower() == "true"
        wanted = self._wanted(t, request.query.get("properties"))
        assoc = tuple(self._type(a).name for v in request.query.get("associations", []) for a in v.split(",") if a)
        key = _PageKey(t.name, start, limit, archived, wanted, assoc, self.world.tick)
        body, records, next_idx = self._pages.get(key)
        if next_idx is not None:
            self._pages.prefetch(key._replace(start=next_idx))
        return Response(200, body, records=records)

    def _list_body(self, key: _PageKey) -> tuple[bytes, int, int | None]:
        """(JSON body, records, index of the next page) of one list page, encoded on the read-ahead
        worker too: encoding on the connection thread while the worker computes the next page
        made the two take turns at the GIL, which cost more CPU than the encoding itself."""
        t = _TYPES[key.type]
        results, next_idx = self._list_page(key)
        body: dict[str, Any] = {"results": results}
        if next_idx is not None:
            nxt = str(t.offset + next_idx)
            body["paging"] = {"next": {"after": nxt, "link": f"{PUBLIC_BASE}/crm/v3/objects/{t.name}?after={nxt}"}}
        return orjson.dumps(body), len(results), next_idx

    def _list_page(self, key: _PageKey) -> tuple[list[dict[str, Any]], int | None]:
        """One list page (records, index of the next one): a pure function of the key."""
        t = _TYPES[key.type]
        tick, start = key.tick, key.start
        view = self._views[t.name]
        count = view.count(tick)
        ids = view.archived_indexes(tick, start) if key.archived else range(start, count) if tick == 0 else (
            i for i in range(start, count) if not view.is_archived(i, tick))  # none archived at tick 0
        results: list[dict[str, Any]] = []
        for idx in ids:
            if len(results) == key.limit:
                return results, idx
            rec = self._record(t, idx, tick, key.wanted)
            if key.assoc:
                rec["associations"] = {
                    to: {"results": [{"id": str(_TYPES[to].offset + o), "type": _V3_ASSOC_NAMES.get(
                        (t.name, to), f"{t.singular}_to_{_TYPES[to].singular}")
                                      + ("" if n == 0 else "_unlabeled")}
                                     for o in self._associated(t.name, to, idx, tick)
                                     for n in range(min(2, len(_ASSOC_TYPES[(t.name, to)])))]}
                    for to in key.assoc if (t.name, to) in _ASSOC_TYPES}
            results.append(rec)
        return results, None

    def _get(self, request: Request, type: str, id: str) -> Response:
        t = self._type(type)
        tick = self.world.tick
        idx = self._idx(t, id, tick)
        archived = (request.arg("archived") or "false").lower() == "true"
        view = self._views[t.name]
        if idx is None and t.name == "contacts" and id.isdigit():
            survivor = merged_survivor(self.world.seed, int(id))
            if survivor is not None and survivor < view.count(tick) and not archived \
                    and not view.is_archived(survivor, tick):
                # a merged-away contact: HubSpot points at the record it was merged into
                location = f"{request.base_url}/crm/v3/objects/contacts/{1000 + survivor}"
                query = request.target.partition("?")[2]
                if query:
                    location += "?" + query
                return Response(301, _error_body(f"Contact {id} was merged into {1000 + survivor}.",
                                                 "MOVED_PERMANENTLY", context={"id": [str(1000 + survivor)]}),
                                {"Location": location})
        if idx is None or view.is_archived(idx, tick) != archived:
            raise _HubSpotError(404, "Object not found.", "OBJECT_NOT_FOUND")
        rec = self._record(t, idx, tick, self._wanted(t, request.query.get("properties")))
        return Response(200, rec, records=1)

    def _batch_read(self, request: Request, type: str) -> Response:
        t = self._type(type)
        tick = self.world.tick
        payload = request.json() or {}
        inputs = payload.get("inputs") or []
        if len(inputs) > 100:
            raise _HubSpotError(400, f"Batch input too large: {len(inputs)} > 100", "VALIDATION_ERROR")
        archived = (request.arg("archived") or "false").lower() == "true"
        wanted = self._wanted(t, payload.get("properties"))
        view = self._views[t.name]
        started = format_ms(int(time.time() * 1000))
        results, missing = [], []
        for item in inputs:
            idx = self._idx(t, item.get("id"), tick)
            if idx is None or view.is_archived(idx, tick) != archived:
                missing.append(str(item.get("id")))
            else:
                results.append(self._record(t, idx, tick, wanted))
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                                "completedAt": format_ms(int(time.time() * 1000))}
        if missing:
            body["numErrors"] = 1
            body["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                               "message": f"Could not get some {t.singular.upper()} objects, they may be deleted "
                                          "or not exist. Check that ids are valid.",
                               "context": {"ids": missing}}]
        return Response(207 if missing else 200, body, records=len(results))

    # -- marketing (connectors/hubspot/emulator_marketing.py) ---------------------------------------

    def _email_events(self, request: Request) -> Response:
        return self.marketing.email_events(request)

    def _forms(self, request: Request) -> Response:
        return self.marketing.forms(request)

    def _form_submissions(self, request: Request, guid: str) -> Response:
        return self.marketing.form_submissions(request, guid)

    def _marketing_emails(self, request: Request) -> Response:
        return self.marketing.marketing_emails(request)

    # -- search ----------------------------------------------------------------------------------

    def _search(self, request: Request, type: str) -> Response:
        t = self._type(type)
        tick = self.world.tick
        payload = request.json() or {}
        limit = int(payload.get("limit") or 10)
        if not 1 <= limit <= 200:
            raise _HubSpotError(400, f"limit must be between 1 and 200, got {limit}", "VALIDATION_ERROR")
        after = int(payload.get("after") or 0)
        if after >= SEARCH_CAP:
            raise _HubSpotError(400, "There was a problem with the request.", "VALIDATION_ERROR",
                                errors=[{"message": f"Paging past {SEARCH_CAP} results is not supported; "
                                                    "narrow the query (e.g. by hs_object_id or a date window).",
                                         "code": "INVALID_INTEGER", "in": "after"}])
        groups = payload.get("filterGroups") or []
        if len(groups) > 5 or sum(len(g.get("filters") or []) for g in groups) > 18:
            raise _HubSpotError(400, "Too many filters: at most 5 filterGroups and 18 filters in total",
                                "VALIDATION_ERROR")
        sorts = payload.get("sorts") or []
        wanted = self._wanted(t, payload.get("properties"))
        view = self._views[t.name]
        fast = self._id_window(t, groups, sorts)
        if fast is not None:
            lo, hi = fast[0], min(fast[1], view.count(tick))
            lo = min(lo, hi)
            total = self._count_live(view, lo, hi, tick)
            page = []
            skipped = 0
            for idx in range(lo, hi):
                if view.is_archived(idx, tick):
                    continue
                if skipped < after:
                    skipped += 1
                    continue
                page.append(idx)
                if len(page) == limit:
                    break
        else:
            matches = self._matches(t, groups, sorts, payload.get("query"), tick)
            total = len(matches)
            page = matches[after: after + limit]
        results = [self._record(t, idx, tick, wanted) for idx in page]
        body: dict[str, Any] = {"total": total, "results": results}
        if after + limit < total:
            body["paging"] = {"next": {"after": str(after + limit)}}
        return Response(200, body, records=len(results))

    def _count_live(self, view: View, lo: int, hi: int, tick: int) -> int:
        archived = 0
        for idx in view.archived_indexes(tick, lo):
            if idx >= hi:
                break
            archived += 1
        return max(0, hi - lo - archived)

    @staticmethod
    def _id_window(t: _ObjectType, groups: list[Any], sorts: list[Any]) -> tuple[int, int] | None:
        """[lo, hi) index window when the query is only an hs_object_id range sorted by id ascending."""
        if len(groups) > 1:
            return None
        for s in sorts:
            if isinstance(s, dict):
                if s.get("propertyName") != "hs_object_id" or str(s.get("direction", "ASCENDING")).upper() \
                        not in ("ASCENDING", "ASC"):
                    return None
            elif str(s) not in ("hs_object_id", "+hs_object_id"):
                return None
        lo, hi = 0, 1 << 62
        for f in (groups[0].get("filters") or []) if groups else []:
            if f.get("propertyName") != "hs_object_id":
                return None
            op = f.get("operator")
            try:
                if op == "BETWEEN":
                    lo, hi = max(lo, int(f["value"]) - t.offset), min(hi, int(f["highValue"]) - t.offset + 1)
                    continue
                v = int(f["value"]) - t.offset
            except (KeyError, TypeError, ValueError):
                return None
            if op == "GT":
                lo = max(lo, v + 1)
            elif op == "GTE":
                lo = max(lo, v)
            elif op == "LT":
                hi = min(hi, v)
            elif op == "LTE":
                hi = min(hi, v + 1)
            elif op == "EQ":
                lo, hi = max(lo, v), min(hi, v + 1)
            else:
                return None
        return max(0, lo), max(0, hi)

    def _matches(self, t: _ObjectType, groups: list[Any], sorts: list[Any], query: Any, tick: int) -> list[int]:
        key = orjson.dumps([t.name, groups, sorts, query, tick], option=orjson.OPT_SORT_KEYS)
        with self._cache_lock:
            hit = self._search_cache.get(key)
            if hit is not None:
                self._search_cache.move_to_end(key)
                return hit
        view = self._views[t.name]
        count = view.count(tick)
        compiled = [[self._compile(t, f) for f in (g.get("filters") or [])] for g in groups] or [[]]
        candidates: set[int] = set()
        for g in groups or [{}]:
            candidates.update(self._candidates(t, g.get("filters") or [], tick, count))
        text = str(query).strip().lower() if query else ""
        kinds = _PROP_KIND[t.name]
        modified_prop = t.modified_prop
        result: list[int] = []
        for idx in candidates:
            if view.is_archived(idx, tick):
                continue
            cache: dict[str, Any] = {}

            def value(prop: str, idx: int = idx, cache: dict[str, Any] = cache) -> Any:
                if prop == "hs_object_id":
                    return t.offset + idx
                if prop == modified_prop:
                    return view.modified_ms(idx, tick)
                if "props" not in cache:
                    cache["props"] = self._builders[t.name](idx, tick)[0]
                raw = cache["props"].get(prop)
                if raw is None:
                    return None
                kind = kinds.get(prop)
                if kind == "datetime":
                    return parse_time(raw)
                if kind == "number":
                    return float(raw)
                return raw.strip().lower()

            if not any(all(f(value) for f in group) for group in compiled):
                continue
            if text and not any(text in str(value(p) or "") for p in ("email", "firstname", "lastname",
                                                                         "name", "domain", "dealname")):
                continue
            result.append(idx)
        result = self._sort(t, result, sorts, tick)
        if len(result) <= 100_000:  # paging through a query reuses its matches; memory stays bounded
            with self._cache_lock:
                self._search_cache[key] = result
                while len(self._search_cache) > 16:
                    self._search_cache.popitem(last=False)
        return result

    def _candidates(self, t: _ObjectType, filters: list[Any], tick: int, count: int) -> Iterator[int]:
        view = self._views[t.name]
        lo, hi = 0, count
        since: int | None = None
        explicit: set[int] | None = None
        for f in filters:
            prop, op = f.get("propertyName"), f.get("operator")
            try:
                if prop == "hs_object_id":
                    if op in ("GT", "GTE", "EQ", "BETWEEN"):
                        v = int(f["value"]) - t.offset
                        lo = max(lo, v + 1 if op == "GT" else v)
                    if op in ("LT", "LTE", "EQ"):
                        v = int(f["value"]) - t.offset
                        hi = min(hi, v if op == "LT" else v + 1)
                    if op == "BETWEEN":
                        hi = min(hi, int(f["highValue"]) - t.offset + 1)
                    if op == "IN":
                        ids = {int(v) - t.offset for v in f.get("values") or []}
                        explicit = ids if explicit is None else explicit & ids
                elif prop in (t.modified_prop, "lastmodifieddate", "hs_lastmodifieddate") and op in (
                        "GT", "GTE", "EQ", "BETWEEN"):
                    v = parse_time(f["value"]) + (1 if op == "GT" else 0)
                    since = v if since is None else max(since, v)
            except (KeyError, TypeError, ValueError):
                continue
        if explicit is not None:
            return (i for i in explicit if lo <= i < hi)
        if since is not None:
            return view.changed_since(since, tick, lo, hi)
        return iter(range(max(0, lo), min(count, hi)))

    @staticmethod
    def _compile(t: _ObjectType, f: dict[str, Any]) -> Callable[[Callable[[str], Any]], bool]:
        prop = f.get("propertyName")
        op = f.get("operator", "EQ")
        if not isinstance(prop, str):
            raise _HubSpotError(400, "Each filter needs a propertyName", "VALIDATION_ERROR")
        kind = "number" if prop == "hs_object_id" else _PROP_KIND[t.name].get(prop)
        if prop == t.modified_prop:
            kind = "datetime"
        if kind is None:
            if prop in ("lastmodifieddate", "hs_lastmodifieddate"):  # the other object's cursor name
                prop, kind = t.modified_prop, "datetime"
            else:
                raise _HubSpotError(400, f"There was a problem with the request. Property \"{prop}\" does not "
                                         f"exist on object type {t.singular}", "VALIDATION_ERROR")

        def conv(v: Any) -> Any:
            if kind == "datetime":
                return parse_time(v)
            if kind == "number":
                return float(v)
            return str(v).strip().lower()

        if op == "HAS_PROPERTY":
            return lambda val: val(prop) is not None
        if op == "NOT_HAS_PROPERTY":
            return lambda val: val(prop) is None
        if op in ("IN", "NOT_IN"):
            values = {conv(v) for v in f.get("values") or []}
            if op == "IN":
                return lambda val: val(prop) in values
            return lambda val: val(prop) not in values
        if op == "BETWEEN":
            low, high = conv(f["value"]), conv(f["highValue"])
            return lambda val: (x := val(prop)) is not None and low <= x <= high
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            token = str(f.get("value", "")).strip().lower().strip("*")
            if op == "CONTAINS_TOKEN":
                return lambda val: token in str(val(prop) or "")
            return lambda val: token not in str(val(prop) or "")
        ops: dict[str, Callable[[Any, Any], bool]] = {
            "EQ": lambda a, b: a == b, "NEQ": lambda a, b: a != b, "GT": lambda a, b: a > b,
            "GTE": lambda a, b: a >= b, "LT": lambda a, b: a < b, "LTE": lambda a, b: a <= b}
        if op not in ops:
            raise _HubSpotError(400, f"Unknown operator {op!r}", "VALIDATION_ERROR")
        cmp = ops[op]
        target = conv(f.get("value"))
        if op == "NEQ":
            return lambda val: val(prop) != target
        return lambda val: (x := val(prop)) is not None and cmp(x, target)

    def _sort(self, t: _ObjectType, ids: list[int], sorts: list[Any], tick: int) -> list[int]:
        if not sorts:
            return sorted(ids)
        s = sorts[0]
        if isinstance(s, dict):
            prop = s.get("propertyName", "hs_object_id")
            desc = str(s.get("direction", "ASCENDING")).upper().startswith("DESC")
        else:
            prop, desc = str(s).lstrip("+-"), str(s).startswith("-")
        view = self._views[t.name]
        if prop == "hs_object_id":
            return sorted(ids, reverse=desc)
        if prop in (t.modified_prop, "lastmodifieddate", "hs_lastmodifieddate"):
            keyed = sorted(ids, key=lambda i: (view.modified_ms(i, tick), i), reverse=desc)
            return keyed
        props_of = self._builders[t.name]
        return sorted(ids, key=lambda i: (str(props_of(i, tick)[0].get(prop) or ""), i), reverse=desc)

    # -- properties, pipelines, owners -----------------------------------------------------------

    def _properties(self, request: Request, type: str) -> Response:
        t = self._type(type)
        results = []
        for order, (name, label, ptype, field_type, group, defined, options) in enumerate(_PROPERTY_DEFS[t.name]):
            prop: dict[str, Any] = {
                "name": name, "label": label, "type": ptype, "fieldType": field_type, "description": "",
                "groupName": group, "displayOrder": order if not defined else -1, "calculated": False,
                "externalOptions": False, "hasUniqueValue": name == "hs_object_id", "hidden": False,
                "formField": not defined, "archived": False, "createdAt": _EPOCH_ISO, "updatedAt": _EPOCH_ISO,
                "modificationMetadata": {"archivable": not defined, "readOnlyDefinition": defined,
                                         "readOnlyValue": name in ("hs_object_id", "createdate")},
                "options": [{"label": o.replace("_", " ").title(), "value": o, "displayOrder": n, "hidden": False}
                            for n, o in enumerate(options)],
            }
            if defined:
                prop["hubspotDefined"] = True
            else:
                prop["hubspotDefined"] = False
                prop["createdUserId"] = "1234567"
            results.append(prop)
        return Response(200, {"results": results})

    def _pipelines(self, request: Request, type: str) -> Response:
        if self._type(type).name != "deals":
            return Response(200, {"results": []})
        return Response(200, {"results": pipelines()}, records=2)

    def _pipeline(self, request: Request, type: str, pipeline: str) -> Response:
        found = [p for p in pipelines() if p["id"] == pipeline] if self._type(type).name == "deals" else []
        if not found:
            raise _HubSpotError(404, f"Unable to find pipeline {pipeline}", "OBJECT_NOT_FOUND")
        return Response(200, found[0], records=1)

    def _owners(self, request: Request) -> Response:
        if (request.arg("archived") or "false").lower() == "true":  # no owner was ever deactivated
            return Response(200, {"results": []})
        first = ("Alex", "Sam", "Jordan", "Casey", "Riley", "Morgan", "Taylor", "Jamie", "Avery", "Quinn",
                 "Drew", "Parker")
        results = [{"id": str(o), "email": f"{first[n].lower()}@factoryline.example", "firstName": first[n],
                    "lastName": "Rep", "userId": 9_000_000 + n, "createdAt": _EPOCH_ISO, "updatedAt": _EPOCH_ISO,
                    "archived": False, "teams": [], "type": "PERSON"} for n, o in enumerate(OWNERS)]
        return Response(200, {"results": results})

    # -- associations v4 -------------------------------------------------------------------------

    def _associated(self, frm: str, to: str, idx: int, tick: int) -> list[int]:
        w = self.world
        if frm == "contacts" and to == "companies":  # first: every contacts page asks for it
            j = w.company_of(idx)
            return [] if j is None else [j]
        if frm in DERIVED:
            return derived_links(w, frm, idx, tick).get(to, [])
        if frm == "deals" and to == "line_items":
            f = DERIVED["line_items"][1]
            return [idx * f + k for k in range(f)]
        if frm == "companies" and to == "contacts":
            return w.people_of_company(idx, tick)
        if frm == "contacts" and to == "deals":
            return w.deals_of_person(idx, tick)
        if frm == "deals" and to == "contacts":
            return [w.contact_of_deal(idx, tick)]
        if frm == "deals" and to == "companies":
            j = w.company_of(w.contact_of_deal(idx, tick))
            return [] if j is None else [j]
        if frm == "companies" and to == "deals":
            return w.deals_of_company(idx, tick)
        return []

    def _assoc_rows(self, frm: _ObjectType, to: _ObjectType, idx: int, tick: int) -> list[dict[str, Any]]:
        types = _ASSOC_TYPE_ROWS.get((frm.name, to.name))
        if types is None:
            return []
        # one shared associationTypes list per (pair, labelled): rows are only serialised
        plain, labelled = types
        to_view = self._views[to.name]
        rows = []
        for o in self._associated(frm.name, to.name, idx, tick):
            if tick and to_view.is_archived(o, tick):  # nothing is archived at tick 0
                continue
            # a user-defined label on ~1 in 8 contact-company pairs
            labels = labelled if labelled is not None and (idx if frm.name == "contacts" else o) % 8 == 3 \
                else plain
            rows.append({"toObjectId": to.offset + o, "associationTypes": labels})
        return rows

    def _assoc_batch(self, request: Request, type: str, to: str) -> Response:
        frm, dst = self._type(type), self._type(to)
        tick = self.world.tick
        payload = request.json() or {}
        inputs = payload.get("inputs") or []
        if len(inputs) > 1000:
            raise _HubSpotError(400, f"Batch input too large: {len(inputs)} > 1000", "VALIDATION_ERROR")
        started = format_ms(int(time.time() * 1000))
        results, missing = [], []
        count = self._views[frm.name].count(tick)
        # contacts -> companies follows every contacts page: _assoc_rows inlined for that pair
        company_of = self.world.company_of if (frm.name, dst.name) == ("contacts", "companies") else None
        plain, labelled = _ASSOC_TYPE_ROWS.get((frm.name, dst.name), ([], None))
        companies = self._views["companies"]
        for item in inputs:
            raw = item.get("id")
            try:
                idx = int(str(raw)) - frm.offset  # as _idx, with the count taken once
            except ValueError:
                idx = -1
            if not 0 <= idx < count:
                missing.append(str(raw))
                continue
            if company_of is not None:
                j = company_of(idx)
                if j is None or (tick and companies.is_archived(j, tick)):
                    missing.append(str(raw))
                else:
                    results.append({"from": {"id": str(raw)}, "to": [{
                        "toObjectId": dst.offset + j, "associationTypes": labelled if idx % 8 == 3 else plain}]})
                continue
            rows = self._assoc_rows(frm, dst, idx, tick)
            if rows:
                results.append({"from": {"id": str(raw)}, "to": rows})
            else:
                missing.append(str(raw))
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                                "completedAt": format_ms(int(time.time() * 1000))}
        if missing:
            body["numErrors"] = len(missing)
            body["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND", "subCategory": "crm.associations."
                               "NO_ASSOCIATIONS_FOUND", "message": f"No {dst.singular}s are associated with "
                               f"{frm.singular} {m}.", "context": {"fromObjectId": [m]}} for m in missing]
        return Response(207 if missing else 200, body, records=len(results))

    def _assoc_get(self, request: Request, type: str, id: str, to: str) -> Response:
        frm, dst = self._type(type), self._type(to)
        tick = self.world.tick
        idx = self._idx(frm, id, tick)
        if idx is None:
            raise _HubSpotError(404, f"Object {id} of type {frm.singular} not found.", "OBJECT_NOT_FOUND")
        rows = self._assoc_rows(frm, dst, idx, tick)
        limit = int(request.arg("limit") or 500)
        start = int(request.arg("after") or 0)
        body: dict[str, Any] = {"results": rows[start: start + limit]}
        if start + limit < len(rows):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return Response(200, body, records=len(body["results"]))
