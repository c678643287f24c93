"""Marketing journeys over the sandbox world: campaigns, touches, social handles and shop orders.

Everything here is a pure function of ``(world seed, index, tick)``, like :mod:`sandbox.world`:
person ``i``'s touches and orders are computed from ``World.person(i, t)`` in O(its touches),
without building the population, so memory stays flat at 1,000,000 people.

The journey of a person is consistent with the CRM record:

* base touches (before tick 0) lie in ``[created_ms, min(created_ms + 150 days, tick0 - 1 day)]``;
  the first touch is at ``created_ms``;
* every stage the person entered has a touch at exactly its date: ``lead`` a ``form_submission``,
  ``marketingqualifiedlead`` an ``email_click`` (a ``page_view`` for people without an email),
  ``salesqualifiedlead`` a ``webinar_attended``, ``opportunity`` and ``customer`` a ``meeting``
  (Salesforce), ``evangelist`` a ``social_mention`` (or a review ``form_submission``), and the first
  stage the creation touch;
* each tick ``k`` that changes person ``i`` (``World``'s change set) adds exactly one touch at
  ``ticks[k]``; a person appended by a growing world gets its stage touches at its creation time;
* customers have orders at or after their customer date; ~10% of non-customers buy as guests.

See docs/journeys.md for the rates and the measured overlaps.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import count, product, repeat
from operator import itemgetter
from typing import Any

from sandbox.world import _FIRST as _WORLD_FIRST
from sandbox.world import _LAST as _WORLD_LAST
from sandbox.world import CHANGE_MODULUS, DAY_MS, LIFECYCLE_STAGES, YEAR_MS, Person, World
from sandbox.world import _h as _world_h

__all__ = [
    "CAMPAIGN_KINDS",
    "CHANNELS",
    "SYSTEMS",
    "TOUCH_KINDS",
    "Campaign",
    "Journeys",
    "Order",
    "OrderLine",
    "Touch",
    "tweet_id",
    "tweet_url",
]

_M64 = (1 << 64) - 1
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
#: base touches and orders of a person lie within this long after its creation
ACTIVE_MS = 150 * DAY_MS
#: order ids: person_idx * ORDER_SLOTS + n (n-th order of that person); at most this many per person
ORDER_SLOTS = 64
#: a base person's background social mentions lie within this long after its creation
SOCIAL_WINDOW_MS = 60 * DAY_MS
#: X's snowflake epoch (ms): tweet ids are ``(created_ms - TWEPOCH) << 22 | 22 hash bits``
TWEPOCH = 1_288_834_974_657
SITE = "https://www.factoryline.example"
SHOP = "https://shop.factoryline.example"

CAMPAIGN_KINDS = ("email", "webinar", "event", "ads", "social", "content")
CHANNELS = ("email", "web", "social", "paid", "event")
SYSTEMS = ("hubspot", "marketo", "mailchimp", "salesforce", "x")
TOUCH_KINDS = (
    "email_send", "email_delivered", "email_open", "email_click", "email_bounce", "unsubscribe",
    "form_submission", "webinar_attended", "ad_click", "social_mention", "page_view", "call", "meeting",
)
MARKETING_KINDS = frozenset(TOUCH_KINDS) - {"call", "meeting"}
SALES_KINDS = frozenset({"call", "meeting"})

#: campaign ``c`` has the shape of slot ``c % 10``: (kind, channel, system, label).
#: Slots 0-4 already cover the four campaign systems, so the smallest world (5 campaigns) has them all.
_SLOTS = (
    ("email", "email", "hubspot", "Newsletter"),
    ("webinar", "web", "marketo", "Webinar"),
    ("email", "email", "mailchimp", "Nurture"),
    ("ads", "paid", "salesforce", "Paid Search"),
    ("email", "email", "marketo", "Drip"),
    ("content", "web", "hubspot", "Ebook"),
    ("social", "social", "hubspot", "Social Buzz"),
    ("email", "email", "mailchimp", "Promo"),
    ("event", "event", "marketo", "Virtual Summit"),
    ("event", "event", "salesforce", "Trade Show"),
)
_EMAIL_SLOTS = {"hubspot": (0,), "marketo": (4,), "mailchimp": (2, 7)}
_WEBINAR_SLOTS = (1, 8)
_ADS_SLOTS = (3,)
_CONTENT_SLOTS = (5,)
_SOCIAL_SLOTS = (6,)
_EVENT_SF_SLOTS = (9,)
_THEMES = ("Spring Launch", "Data Driven", "Growth Playbook", "Pipeline Boost", "Customer Stories",
           "Product Tour", "Year End", "Summer Sale", "AI Insights", "Scale Up", "Back To Work",
           "Benchmark Report")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: utm_source / utm_medium of an order or click coming from a campaign, by channel
_UTM = {"email": ("newsletter", "email"), "web": ("website", "content"), "social": ("x", "social"),
        "paid": ("google", "cpc"), "event": ("event", "referral")}
_PAGES = ("/", "/pricing", "/blog/attribution-101", "/blog/funnel-metrics", "/product", "/customers",
          "/docs/getting-started", "/about", "/contact", "/blog/lead-scoring")
_FORMS = ("/newsletter", "/ebook/marketing-factory", "/demo", "/contact-sales", "/webinar/register",
          "/trial")
#: (sku, title, unit price in cents)
_PRODUCTS = (
    ("FL-STARTER", "Starter plan (monthly)", 4900),
    ("FL-PRO", "Professional plan (monthly)", 14900),
    ("FL-ENT", "Enterprise plan (monthly)", 89900),
    ("FL-SEAT", "Add-on seat", 1900),
    ("FL-ONBOARD", "Onboarding package", 49900),
    ("FL-TSHIRT", "Factoryline T-shirt", 2500),
    ("FL-MUG", "Factoryline mug", 1400),
    ("FL-BOOK", "The Marketing Factory (book)", 3900),
)
_CURRENCY = {"United States": "USD", "USA": "USD", "US": "USD", "united states": "USD", "Canada": "CAD",
             "United Kingdom": "GBP", "UK": "GBP", "GB": "GBP", "Ireland": "EUR", "Germany": "EUR",
             "DE": "EUR", "Deutschland": "EUR", "France": "EUR", "Netherlands": "EUR", "Spain": "EUR",
             "Italy": "EUR", "Sweden": "SEK", "Australia": "AUD", "Singapore": "SGD", "Japan": "JPY",
             "Brazil": "BRL"}
_FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "proton.me")
_STAGE_RANK = {s: n for n, s in enumerate(LIFECYCLE_STAGES)}
_CUSTOMER_RANK = _STAGE_RANK["customer"]

# salts (distinct from sandbox.world's 1..3999)
_S_SYSTEM, _S_HANDLE, _S_CAMPAIGN, _S_TOUCH, _S_TICK, _S_ORDER, _S_GUEST, _S_SHOPMAIL, _S_SOCIAL = (
    9001, 9002, 9003, 9004, 9005, 9006, 9007, 9008, 9009)
#: sandbox.world's salt of the hash that picks a person's base stage (see ``World.person``)
_WORLD_S_STAGE = 15

# -- rates (documented in docs/journeys.md) -------------------------------------------------------
HANDLE_PCT = 35          # people with an X handle
HANDLE_KNOWN_PCT = 70    # of those, the CRM knows the handle
GUEST_PCT = 10           # non-customers who buy in the shop as guests
GUEST_OTHER_EMAIL_PCT = 40  # guest buyers who use an email the CRM does not have
SHOP_EMAIL_CASE_PCT = 6  # shop email differs in case from the CRM's
SHOP_EMAIL_SPACE_PCT = 3  # shop email has surrounding whitespace
TEST_ORDER_PER_MILLE = 15
CANCEL_PCT = 4
REFUND_LINE_PCT = 2
UTM_CAMPAIGN_PCT = 45    # orders after a campaign touch that carry that campaign's utm fields
UTM_UNKNOWN_PCT = 3      # orders whose utm_campaign names no campaign
BOUNCE_PER_MILLE = 30
OPEN_PCT = 45
CLICK_PCT = 35
UNSUB_PER_MILLE = 15


def _h(seed: int, salt: int, a: int, b: int = 0) -> int:
    """64 pseudo-random bits; CPython's tuple hash of ints is fixed across runs and platforms."""
    return hash((seed, salt, a, b)) & _M64


def tweet_id(at_ms: int, person_idx: int) -> int:
    """The id of the tweet behind a ``social_mention`` touch: a snowflake, increasing with time."""
    return ((at_ms - TWEPOCH) << 22) | (hash((person_idx, at_ms, 0x5EED)) & 0x3FFFFF)


def tweet_url(handle: str, person_idx: int, at_ms: int) -> str:
    """The URL a ``social_mention`` touch carries (the X emulator serves this tweet id)."""
    return f"https://x.com/{handle}/status/{tweet_id(at_ms, person_idx)}"


def _stream(seed: int, salt: int, a: int) -> Callable[[], int]:
    """``hash((seed, salt, a, n))`` for n = 1, 2, ... (unmasked: callers ``& _M64``), computed in C
    by ``map``/``zip``: a draw costs ~0.05 us instead of ~3 us through a Python method."""
    return map(hash, zip(repeat(seed), repeat(salt), repeat(a), count(1))).__next__


class _Rng:
    """A counter-based stream of 64-bit values for one (seed, salt, index): the n-th value
    (n = 1, 2, ...) is ``hash((seed, salt, index, n)) & _M64``."""

    __slots__ = ("_nx",)

    def __init__(self, seed: int, salt: int, a: int) -> None:
        self._nx = _stream(seed, salt, a)

    def next(self) -> int:
        return self._nx() & _M64

    def below(self, n: int) -> int:
        return (self._nx() & _M64) % n

    def pct(self) -> int:
        return (self._nx() & _M64) % 100

    def mille(self) -> int:
        return (self._nx() & _M64) % 1000

    def between(self, lo: int, hi: int) -> int:
        return lo if hi <= lo else lo + (self._nx() & _M64) % (hi - lo + 1)


# -------------------------------------------------------------------------------------------------
# records
# -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Campaign:
    idx: int
    name: str
    kind: str        # email | webinar | event | ads | social | content
    channel: str     # email | web | social | paid | event
    system: str      # hubspot | marketo | mailchimp | salesforce
    status: str      # planned | in_progress | completed | aborted
    budget: int      # cents
    actual_cost: int  # cents
    start_ms: int
    end_ms: int
    created_ms: int


class _TouchSlots:
    """Touch's storage, without its frozen ``__setattr__``: ``_touches`` fills one with plain slot
    stores, then makes it a Touch by assigning ``__class__`` (Touch adds no slots: the cheapest
    such assignment), the same frozen record as ``Touch(...)`` builds."""

    __slots__ = ("at_ms", "campaign_idx", "kind", "person_idx", "seq", "system", "url")


@dataclass(frozen=True, slots=True)
class Touch(_TouchSlots):
    person_idx: int
    seq: int         # unique per person, increasing with time, stable across ticks
    kind: str
    at_ms: int
    campaign_idx: int | None
    system: str      # hubspot | marketo | mailchimp | x | salesforce
    url: str | None


assert not vars(Touch)["__slots__"], "Touch keeps its fields in _TouchSlots"
_set_attr = object.__setattr__
_TOUCH_FIELDS = tuple(Touch.__dataclass_fields__)


def _touch_init(self: Touch, person_idx: int, seq: int, kind: str, at_ms: int, campaign_idx: int | None,
                system: str, url: str | None) -> None:
    """``Touch.__init__`` as a _TouchSlots: the generated one of a frozen dataclass goes through
    ``object.__setattr__`` per field (~1.1 us a touch); this one sets the class twice and stores
    the fields plainly (~0.5 us less than through the slot descriptors' ``__set__``). Same
    signature, same frozen record."""
    x: Any = self
    if type(self) is not Touch:  # a subclass may have another layout: the frozen dataclass's way
        for name, value in zip(_TOUCH_FIELDS, (person_idx, seq, kind, at_ms, campaign_idx, system, url),
                               strict=True):
            _set_attr(x, name, value)
        return
    _set_attr(x, "__class__", _TouchSlots)
    x.person_idx = person_idx
    x.seq = seq
    x.kind = kind
    x.at_ms = at_ms
    x.campaign_idx = campaign_idx
    x.system = system
    x.url = url
    x.__class__ = Touch


Touch.__init__ = _touch_init  # type: ignore[method-assign]
_new_object = object.__new__


def _fields_twin(cls: type) -> type:
    """A class with ``cls``'s slots (same layout) but not its frozen ``__setattr__``: a record is
    filled as one with plain slot stores (~10 ns each, vs ~80 ns through a slot descriptor's
    ``__set__``), then made a ``cls`` by assigning ``__class__``; same fields, same frozen record."""
    twin = type(f"_{cls.__name__}Fields", (), {"__slots__": vars(cls)["__slots__"]})
    probe: Any = _new_object(twin)
    probe.__class__ = cls  # TypeError here if the layouts differed
    return twin


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    title: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True, slots=True)
class Order:
    idx: int
    person_idx: int
    number: str
    email: str
    created_ms: int
    updated_ms: int
    cancelled_ms: int | None
    test: bool
    currency: str
    lines: tuple[OrderLine, ...]
    landing_site: str | None
    referring_site: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None


_OrderFields = _fields_twin(Order)
#: _orders' lines: [product][quantity - 1] (records are frozen: orders share them), refund lines
#: by their hash roll, and each product's landing page
_N_PRODUCTS = len(_PRODUCTS)
_LINES = tuple(tuple(OrderLine(sku, title, q, price) for q in (1, 2, 3)) for sku, title, price in _PRODUCTS)
_REFUND_LINES = tuple(OrderLine("ADJ-REFUND", "Refund adjustment", 1, -(500 + r * 100)) for r in range(50))
_LANDING = {sku: f"/products/{sku.lower()}" for sku, _, _ in _PRODUCTS}
#: an order's referring site by utm_medium
_REFERRING = {"email": None, "content": SITE + "/blog", "cpc": "https://www.google.com/", "social": "https://t.co/",
              "referral": "https://partner.example/"}

#: the URLs of _base_events without a campaign (and the bases of those with one)
_SITE_PAGES = tuple(SITE + page for page in _PAGES)
_SITE_FORMS = tuple(SITE + form for form in _FORMS)
_SITE_PRICING, _SITE_PRODUCT, _SITE_REVIEW = SITE + "/pricing", SITE + "/product", SITE + "/review"
_N_PAGES, _N_FORMS1 = len(_PAGES), len(_FORMS) - 1
assert _FORMS[0] == "/newsletter"
_S_TOUCH_POOL = (_S_TOUCH,)
#: the draw numbers of _base_events: far more than a journey takes (at most ~115)
_DRAW_NS = tuple(range(1, 1025))
#: World._name's pools: a handle is f"{first[0]}{last[:7]}".lower() (these stems), then "_" and the index
_N_WORLD_FIRST, _N_WORLD_LAST = len(_WORLD_FIRST), len(_WORLD_LAST)
_HANDLE_STEMS = tuple(tuple(f"{first[0]}{last[:7]}".lower() for last in _WORLD_LAST) for first in _WORLD_FIRST)
#: spans of _base_events' draws (precomputed: names are not folded like literals)
_BACK_SPAN = 2 * DAY_MS - HOUR_MS + 1
_CALL_SPAN = 5 * DAY_MS - HOUR_MS + 1
_OPEN_MIN = 5 * MINUTE_MS
_OPEN_SPAN = 36 * HOUR_MS - 5 * MINUTE_MS + 1
_CLICK_SPAN = 20 * MINUTE_MS - 10_000 + 1

#: an event under construction: (at_ms, kind, campaign_idx, system, url)
_Ev = tuple[int, str, int | None, str, str | None]
_at_of = itemgetter(0)


# -------------------------------------------------------------------------------------------------
# the journeys
# -------------------------------------------------------------------------------------------------


class Journeys:
    """Campaigns, touches and orders of a :class:`World`. Cheap to build; holds no population."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.seed = world.seed
        self._end = world.ticks[0] - DAY_MS
        self._start = self._end - YEAR_MS
        n = self._n_campaigns = max(5, world.size // 100)
        # Campaigns cover [tick0 - 1 year - 30 days, tick0 + 180 days]. With 20 or more, campaign c
        # starts at base + (c - 9) * step and runs at least 11 steps, so at any time x of the span
        # the 10 campaigns up to x's own (one of each shape) are all running. Fewer campaigns are
        # always-on programs that run through the whole span.
        self._camp_base = self._start - 30 * DAY_MS
        self._camp_span = YEAR_MS + 210 * DAY_MS
        self._camp_step = self._camp_span // (n - 9) if n >= 20 else 0
        # per-campaign memos, filled on first use (a pure function of the index; at most
        # size // 100 entries, so memory stays flat): journeys ask for them on every touch
        self._windows: list[tuple[int, int] | None] = [None] * n
        self._slugs: list[str | None] = [None] * n
        #: the shapes of ``_campaign_at``'s ``slots`` that exist in this world
        self._usable: dict[tuple[int, ...], tuple[int, ...]] = {}
        #: ``?utm_source=..&utm_medium=..&utm_campaign=<slug>`` of a campaign's links (memo)
        self._utm_query: list[str | None] = [None] * n
        # constants of _base_events: the people created before tick 0, the usable campaign
        # shapes per purpose, and the draws' key prefix (one-element pools of ``product``)
        self._base_n = world.people.base_count
        self._seed_pool = (self.seed,)
        self._use_email = {system: tuple(s for s in slots if s < n) for system, slots in _EMAIL_SLOTS.items()}
        self._use_content, self._use_webinar, self._use_ads, self._use_social, self._use_event_sf = (
            tuple(s for s in slots if s < n)
            for slots in (_CONTENT_SLOTS, _WEBINAR_SLOTS, _ADS_SLOTS, _SOCIAL_SLOTS, _EVENT_SF_SLOTS))

    # -- campaigns ----------------------------------------------------------------------------------

    def campaign_count(self) -> int:
        return self._n_campaigns

    def _campaign_window(self, idx: int) -> tuple[int, int]:
        if 0 <= idx < self._n_campaigns:
            found = self._windows[idx]
            if found is None:
                found = self._windows[idx] = self._make_campaign_window(idx)
            return found
        return self._make_campaign_window(idx)

    def _make_campaign_window(self, idx: int) -> tuple[int, int]:
        h = _h(self.seed, _S_CAMPAIGN, idx)
        if not self._camp_step:
            start = self._camp_base - (h >> 8) % (60 * DAY_MS) // DAY_MS * DAY_MS
            return start, self._camp_base + self._camp_span + (h >> 24) % (60 * DAY_MS)
        start = self._camp_base + (idx - 9) * self._camp_step
        return start, start + max(45 * DAY_MS, 11 * self._camp_step) + (h >> 8) % (30 * DAY_MS)

    def campaign_slug(self, idx: int) -> str:
        """The slug orders and links carry as ``utm_campaign`` (``spring-launch-webinar-12``)."""
        if 0 <= idx < self._n_campaigns:
            found = self._slugs[idx]
            if found is None:
                found = self._slugs[idx] = self._make_campaign_slug(idx)
            return found
        return self._make_campaign_slug(idx)

    def _make_campaign_slug(self, idx: int) -> str:
        h = _h(self.seed, _S_CAMPAIGN, idx)
        label = _SLOTS[idx % 10][3]
        return f"{_THEMES[h % len(_THEMES)]} {label} {idx}".lower().replace(" ", "-")

    def campaign_by_slug(self, slug: str) -> int | None:
        """The campaign index a slug names, or ``None`` (unknown or mis-typed slugs)."""
        tail = slug.rpartition("-")[2]
        if not tail.isdigit():
            return None
        idx = int(tail)
        return idx if idx < self._n_campaigns and self.campaign_slug(idx) == slug else None

    def campaign(self, idx: int, t: int | None = None) -> Campaign:
        """Campaign ``idx``; its status and actual cost are as of tick ``t`` (default: now)."""
        if not 0 <= idx < self._n_campaigns:
            raise IndexError(idx)
        w = self.world
        now = w.ticks[w.tick if t is None else t]
        h = _h(self.seed, _S_CAMPAIGN, idx)
        kind, channel, system, label = _SLOTS[idx % 10]
        start, end = self._campaign_window(idx)
        month = _MONTHS[(start // (30 * DAY_MS)) % 12]
        name = f"{_THEMES[h % len(_THEMES)]} {label} {month} #{idx}"
        scale = {"email": 5, "webinar": 20, "event": 150, "ads": 80, "social": 10, "content": 15}[kind]
        budget = scale * (1 + (h >> 16) % 20) * 50_000  # cents
        if start > now:
            status, cost = "planned", 0
        elif end >= now:
            status = "in_progress"
            cost = budget * (now - start) // max(1, end - start) * (80 + (h >> 24) % 30) // 100
        else:
            status = "aborted" if (h >> 32) % 100 < 5 else "completed"
            cost = budget * (70 + (h >> 40) % 46) // 100
        return Campaign(idx, name, kind, channel, system, status, budget, cost, start, end,
                        start - (7 + (h >> 48) % 50) * DAY_MS)

    def _campaign_at(self, slots: tuple[int, ...], at_ms: int, roll: int) -> int | None:
        """A running campaign of one of the shapes ``slots`` at ``at_ms`` (``None`` if none)."""
        n = self._n_campaigns
        usable = self._usable.get(slots)
        if usable is None:
            usable = self._usable[slots] = tuple(s for s in slots if s < n)
        if not usable:
            return None
        s = usable[roll % len(usable)]
        if self._camp_step:
            c = min(n - 1, max(9, 9 + (at_ms - self._camp_base) // self._camp_step))
            c -= (c - s) % 10
        else:
            c = s
        window = self._windows[c]
        if window is None:
            window = self._campaign_window(c)
        return c if window[0] <= at_ms <= window[1] else None

    def _find(self, usable: tuple[int, ...], at_ms: int, roll: int) -> int | None:
        """``_campaign_at`` with its ``slots`` already narrowed to the usable ones."""
        if not usable:
            return None
        step = self._camp_step
        if step:
            c = 9 + (at_ms - self._camp_base) // step
            if c >= self._n_campaigns:
                c = self._n_campaigns - 1
            elif c < 9:
                c = 9
            c -= (c - usable[roll % len(usable)]) % 10
        else:
            c = usable[roll % len(usable)]
        window = self._windows[c] or self._campaign_window(c)
        return c if window[0] <= at_ms <= window[1] else None

    def _utm(self, c: int) -> str:
        """The query string of campaign ``c``'s links (memoised in ``_utm_query``)."""
        source, medium = _UTM[_SLOTS[c % 10][1]]
        q = f"?utm_source={source}&utm_medium={medium}&utm_campaign={self.campaign_slug(c)}"
        if 0 <= c < self._n_campaigns:
            self._utm_query[c] = q
        return q

    def _tweet_url(self, idx: int, at_ms: int) -> str:
        handle = self.social_handle(idx)
        assert handle is not None
        return f"https://x.com/{handle}/status/{tweet_id(at_ms, idx)}"

    def _status_base(self, idx: int) -> str:
        """``https://x.com/<handle>/status/`` of a person with a handle (``_tweet_url`` without its id)."""
        h = hash((self.seed, 11, idx)) & _M64  # World._name's hash
        return f"https://x.com/{_HANDLE_STEMS[h % _N_WORLD_FIRST][(h >> 8) % _N_WORLD_LAST]}{'_' if idx < 1_000_000 else ''}{idx}/status/"

    # -- people's systems and handles ------------------------------------------------------------------

    def email_system(self, person_idx: int) -> str:
        """The marketing-email vendor that mails this person (by company, so colleagues share it):
        hubspot 45%, marketo 30%, mailchimp 25%."""
        j = self.world.company_of(person_idx)
        roll = _h(self.seed, _S_SYSTEM, -1 - person_idx if j is None else j) % 100
        return "hubspot" if roll < 45 else "marketo" if roll < 75 else "mailchimp"

    def social_handle(self, person_idx: int) -> str | None:
        """The person's X handle (~35% of people), without the ``@``."""
        h = _h(self.seed, _S_HANDLE, person_idx)
        if h % 100 >= HANDLE_PCT:
            return None
        h = hash((self.seed, 11, person_idx)) & _M64  # World._name's hash
        stem = _HANDLE_STEMS[h % _N_WORLD_FIRST][(h >> 8) % _N_WORLD_LAST]  # f"{first[0]}{last[:7]}".lower()
        return f"{stem}_{person_idx}" if person_idx < 1_000_000 else f"{stem}{person_idx}"

    def has_handle(self, person_idx: int) -> bool:
        """Whether :meth:`social_handle` is not ``None`` (one hash, no name)."""
        return _h(self.seed, _S_HANDLE, person_idx) % 100 < HANDLE_PCT

    def _background_draws(self, idx: int, created: int, horizon: int) -> list[tuple[int, int]]:
        """(time, campaign roll) of a base person's background mentions: 0-2 within
        ``SOCIAL_WINDOW_MS`` of creation, from their own stream so they cost O(1) to list."""
        rng = _Rng(self.seed, _S_SOCIAL, idx)
        hi = min(horizon, created + SOCIAL_WINDOW_MS)
        return [(rng.between(created, hi), rng.next()) for _ in range(rng.below(3))]

    def _background_mentions(self, idx: int, created: int, horizon: int) -> list[tuple[int, int | None]]:
        return [(at, self._campaign_at(_SOCIAL_SLOTS, at, roll >> 8) if roll % 100 < 35 else None)
                for at, roll in self._background_draws(idx, created, horizon)]

    def base_mentions_between(self, lo_ms: int, hi_ms: int) -> list[tuple[int, int]]:
        """``(at_ms, person_idx)`` of every ``social_mention`` before tick 0 of the base people
        with ``lo_ms <= at_ms <= hi_ms``, unsorted. O(people created between 60 days before
        ``lo_ms`` and ``hi_ms``), a few hashes each: no person is built."""
        w = self.world
        space = w.people
        base = space.base_count
        lo_i = max(0, (lo_ms - SOCIAL_WINDOW_MS - space.slot_ms - self._start) * base // YEAR_MS - 1)
        hi_i = min(base, max(0, (hi_ms - self._start) * base // YEAR_MS + 2))
        seed = self.seed
        end = self._end
        out: list[tuple[int, int]] = []
        for i in range(lo_i, hi_i):
            if (hash((seed, _S_HANDLE, i, 0)) & _M64) % 100 >= HANDLE_PCT:
                continue
            _, created, modified, _, _ = w._meta(space, i, 0)
            if created > hi_ms or created + SOCIAL_WINDOW_MS < lo_ms:
                continue
            # the evangelist stage (World.person: stage 6 from this roll) is entered at the last base edit
            if lo_ms <= modified <= hi_ms and 975 <= (_world_h(seed, _WORLD_S_STAGE, i) >> 48) % 1000 < 990:
                out.append((modified, i))
            for at, _ in self._background_draws(i, created, min(end, created + ACTIVE_MS)):
                if lo_ms <= at <= hi_ms:
                    out.append((at, i))
        return out

    def crm_knows_handle(self, person_idx: int) -> bool:
        """Whether the CRM stores the person's handle (~70% of those who have one)."""
        h = _h(self.seed, _S_HANDLE, person_idx)
        return h % 100 < HANDLE_PCT and (h >> 8) % 100 < HANDLE_KNOWN_PCT

    def is_guest_buyer(self, person_idx: int) -> bool:
        """Whether the person buys in the shop as a guest (no shop customer account, the shop
        email may be one the CRM does not know): 10% of the people who were not CRM customers
        when the world (or, for grown people, the person) was created. Guests keep buying as
        guests, even after they become customers in the CRM."""
        if _h(self.seed, _S_GUEST, person_idx) % 100 >= GUEST_PCT:
            return False
        w = self.world
        t = 0 if person_idx < w.people.base_count else w.people.created_tick(person_idx)
        return self._buyer(w.person(person_idx, t))[1]

    # -- touches -------------------------------------------------------------------------------------

    def touches(self, person_idx: int, t: int | None = None) -> list[Touch]:
        """The person's touches up to tick ``t`` (default: now), time-ordered, ``seq`` 0, 1, ..."""
        w = self.world
        t = w.tick if t is None else t
        p = w.person(person_idx, t)
        return self._touches(p, t)

    def _touch_events(self, p: Person, t: int) -> list[_Ev]:
        """The touches of :meth:`_touches` as ``(at_ms, kind, campaign_idx, system, url)`` event
        tuples, in the same order (an event's position is its touch's ``seq``): the base events
        sorted by time (stable), then the tick events. No :class:`Touch` is built."""
        evs = self._base_events(p)
        evs.sort(key=_at_of)  # stable: same-time events keep their causal order
        if t and p.idx % CHANGE_MODULUS in self.world.people.change_ticks:  # else no tick events
            evs += self._tick_events(p, t)
        return evs

    def _touches(self, p: Person, t: int) -> list[Touch]:
        idx = p.idx
        evs = self._touch_events(p, t)
        # Touch(idx, n, kind, at, camp, system, url) for the n-th event, filled as a _TouchSlots
        out: list[Touch] = []
        add = out.append
        make = _TouchSlots
        cls = Touch
        x: Any
        for n, (at, kind, camp, system, url) in enumerate(evs):
            x = make()
            x.person_idx = idx
            x.seq = n
            x.kind = kind
            x.at_ms = at
            x.campaign_idx = camp
            x.system = system
            x.url = url
            x.__class__ = cls
            add(x)
        return out

    def _base_stages(self, p: Person) -> tuple[int, list[tuple[str, int]]]:
        """(cutoff, the stages entered by the person's creation state, in order)."""
        w = self.world
        grown = p.idx >= w.people.base_count
        cutoff = p.created_ms if grown else self._end
        return cutoff, [(s, d) for s, d in p.stage_dates.items() if d <= cutoff]

    def _base_events(self, p: Person) -> list[_Ev]:
        # The hot path of every touch and order (most of a member's or an activity's serving
        # time), written out in one frame: draws are ``nx(draws) & m64`` (a C stream, as _stream's),
        # a campaign is looked up (``_find``) only once its roll passes, URLs are joined from
        # per-campaign query strings, and the handle is built only for a mention. The draws,
        # their order and the events are exactly those of the plain version in git history
        # (bench/bench_journeys.py --hash compares two trees).
        idx = p.idx
        seed = self.seed
        m64 = _M64
        nx = next
        # hash((seed, _S_TOUCH, idx, n)) for n = 1, 2, ...: ``product`` over one-element pools and
        # _DRAW_NS yields those keys (reusing one tuple), cheaper to set up and to step than the
        # zip of repeats and a count of _stream; a journey takes at most ~115 draws
        # (14 for stages, 73 for up to 8 mails, 13 for page views, 14 for the rest; 85 seen)
        draws = map(hash, product(self._seed_pool, _S_TOUCH_POOL, (idx,), _DRAW_NS))
        created = p.created_ms
        grown = idx >= self._base_n
        if grown:
            cutoff = horizon = created
        else:
            cutoff = self._end
            horizon = created + ACTIVE_MS
            if horizon > cutoff:
                horizon = cutoff
        # email_system (with World.company_of), inlined
        if (hash((seed, 12, idx)) & m64) % 100 < 12:
            key = -1 - idx
        else:
            key = idx // 5
            w = self.world
            if key >= w.companies.cum_count[len(w.ticks) - 1]:
                key = -1 - idx
        roll = (hash((seed, _S_SYSTEM, key, 0)) & m64) % 100
        system = "hubspot" if roll < 45 else "marketo" if roll < 75 else "mailchimp"
        has_handle = (hash((seed, _S_HANDLE, idx, 0)) & m64) % 100 < HANDLE_PCT
        has_email = p.email is not None
        evs: list[_Ev] = []
        add = evs.append
        find = self._find
        utm = self._utm_query
        email_slots = self._use_email[system]
        u_content = self._use_content

        # stage triggers: a touch at exactly each stage date
        prev = created
        sql_at: int | None = None
        first_code = -1  # the first stage's rank (-1: none yet)
        rank = 0
        for stage, at in p.stage_dates.items():
            if at > cutoff:
                continue
            code = _STAGE_RANK[stage]
            if code > rank and code != 7:  # 7 is "other", which has no rank here
                rank = code
            if first_code < 0:
                first_code = code
                if code == 7:
                    add((at, "page_view", None, "hubspot", _SITE_PAGES[(nx(draws) & m64) % _N_PAGES]))
                else:
                    form = _SITE_FORMS[0] if code == 0 else _SITE_FORMS[1 + (nx(draws) & m64) % _N_FORMS1]
                    roll = nx(draws) & m64
                    c = find(u_content, at, roll >> 8) if roll % 100 < 40 else None
                    add((at, "form_submission", c, "hubspot", form if c is None else form + (utm[c] or self._utm(c))))
                prev = at
                continue
            if code == 1:  # lead
                roll = nx(draws) & m64
                c = find(u_content, at, roll >> 8) if roll % 100 < 60 else None
                form = _SITE_FORMS[1 + (nx(draws) & m64) % _N_FORMS1]
                add((at, "form_submission", c, "hubspot", form if c is None else form + (utm[c] or self._utm(c))))
            elif code == 2:  # marketingqualifiedlead
                if has_email:
                    back = HOUR_MS + (nx(draws) & m64) % _BACK_SPAN
                    sent = at - back
                    if prev > sent:
                        sent = prev
                    if sent > at - 2_000:
                        sent = at - 2_000
                    if created > sent:
                        sent = created
                    # the email the click answers: send, (no bounce), delivered; no open
                    roll = nx(draws) & m64
                    c = find(email_slots, sent, roll >> 8) if roll % 100 < 90 else None
                    add((sent, "email_send", c, system, None))
                    nx(draws)  # its bounce roll (a clicked email does not bounce)
                    if sent + 2_000 <= horizon:
                        add((sent + 2_000, "email_delivered", c, system, None))
                    page = _SITE_PAGES[(nx(draws) & m64) % _N_PAGES]
                    add((at, "email_click", c, system, page if c is None else page + (utm[c] or self._utm(c))))
                else:
                    add((at, "page_view", None, "hubspot", _SITE_PRICING))
            elif code == 3:  # salesqualifiedlead
                roll = nx(draws) & m64
                add((at, "webinar_attended", find(self._use_webinar, at, roll >> 8) if roll % 100 < 85 else None,
                     "marketo", None))
                sql_at = at
            elif code == 4 or code == 5:  # opportunity, customer
                call_at = at - HOUR_MS - (nx(draws) & m64) % _CALL_SPAN
                add((prev if prev > call_at else call_at, "call", None, "salesforce", None))
                roll = nx(draws) & m64
                add((at, "meeting", find(self._use_event_sf, at, roll >> 8) if roll % 100 < 20 else None,
                     "salesforce", None))
            elif code == 6:  # evangelist
                if has_handle:
                    roll = nx(draws) & m64
                    add((at, "social_mention", find(self._use_social, at, roll >> 8) if roll % 100 < 30 else None,
                         "x", f"{self._status_base(idx)}{((at - TWEPOCH) << 22) | (hash((idx, at, 0x5EED)) & 0x3FFFFF)}"))
                else:
                    add((at, "form_submission", None, "hubspot", _SITE_REVIEW))
            prev = at
        if grown:
            return evs

        # background: campaigns keep running over the active window
        span = horizon - created  # ``between(created, horizon)`` draws only when span > 0
        if has_email and first_code >= 0 and first_code != 7:
            n_mails = 1 + (nx(draws) & m64) % 4 + (rank if rank < 4 else 4)
            lo = created + MINUTE_MS
            if horizon <= lo:
                times = [lo] * n_mails
            else:
                width = horizon - lo + 1
                # a loop, not a comprehension: one would make draws and m64 cell variables
                times = []
                put = times.append
                for _ in range(n_mails):
                    put(lo + (nx(draws) & m64) % width)
                times.sort()
            # the campaign lookup of ``_find``, inlined for the emails (most of the lookups)
            n_slots = len(email_slots)
            inline = bool(self._camp_step and n_slots)
            step = self._camp_step
            camp_base = self._camp_base
            n1 = self._n_campaigns - 1
            windows = self._windows
            horizon_delivered = horizon - 2_000
            horizon_click = horizon - 20 * MINUTE_MS
            horizon_unsub = horizon - MINUTE_MS
            for at in times:
                # one email: send, delivered or bounce, open, click, maybe an unsubscribe that
                # ends the mailing; events past the horizon are dropped
                roll = nx(draws) & m64
                if roll % 100 >= 90:
                    c = None
                elif inline:
                    c = 9 + (at - camp_base) // step
                    if c >= n1:
                        c = n1
                    elif c < 9:
                        c = 9
                    c -= (c - email_slots[(roll >> 8) % n_slots]) % 10
                    window = windows[c] or self._campaign_window(c)
                    if not window[0] <= at <= window[1]:
                        c = None
                else:
                    c = find(email_slots, at, roll >> 8)
                add((at, "email_send", c, system, None))
                if (nx(draws) & m64) % 1000 < BOUNCE_PER_MILLE:
                    if at + 5_000 <= horizon:
                        add((at + 5_000, "email_bounce", c, system, None))
                    continue
                if at <= horizon_delivered:
                    add((at + 2_000, "email_delivered", c, system, None))
                if (nx(draws) & m64) % 100 >= OPEN_PCT:
                    continue
                opened = at + _OPEN_MIN + (nx(draws) & m64) % _OPEN_SPAN
                if opened > horizon:
                    continue
                add((opened, "email_open", c, system, None))
                if (nx(draws) & m64) % 100 < CLICK_PCT and opened <= horizon_click:
                    clicked = opened + 10_000 + (nx(draws) & m64) % _CLICK_SPAN
                    page = _SITE_PAGES[(nx(draws) & m64) % _N_PAGES]
                    add((clicked, "email_click", c, system, page if c is None else page + (utm[c] or self._utm(c))))
                if (nx(draws) & m64) % 1000 < UNSUB_PER_MILLE and opened <= horizon_unsub:
                    add((opened + MINUTE_MS, "unsubscribe", c, system, None))
                    break
        for _ in range((nx(draws) & m64) % 4):
            at = created + (nx(draws) & m64) % (span + 1) if span > 0 else created
            roll = nx(draws) & m64
            c = find(u_content, at, roll >> 8) if roll % 100 < 30 else None
            page = _SITE_PAGES[(nx(draws) & m64) % _N_PAGES]
            add((at, "page_view", c, "hubspot", page if c is None else page + (utm[c] or self._utm(c))))
        if has_handle:
            for _ in range((nx(draws) & m64) % 3):  # draws kept so that the other touches stay put
                if span > 0:
                    nx(draws)
                nx(draws)  # the campaign roll of a mention that no longer exists
            # _background_mentions: 0-2 within SOCIAL_WINDOW_MS of creation, from their own stream
            # (a few draws: hashed one by one, no stream to set up)
            mentions = (hash((seed, _S_SOCIAL, idx, 1)) & m64) % 3
            if mentions:
                hi = created + SOCIAL_WINDOW_MS
                if hi > horizon:
                    hi = horizon
                n = 1
                status = self._status_base(idx)  # == _tweet_url(idx, at) without the tweet id
                for _ in range(mentions):
                    at = created
                    if hi > created:
                        n += 1
                        at += (hash((seed, _S_SOCIAL, idx, n)) & m64) % (hi - created + 1)
                    n += 1
                    roll = hash((seed, _S_SOCIAL, idx, n)) & m64
                    add((at, "social_mention", find(self._use_social, at, roll >> 8) if roll % 100 < 35 else None,
                         "x", f"{status}{((at - TWEPOCH) << 22) | (hash((idx, at, 0x5EED)) & 0x3FFFFF)}"))
        if (nx(draws) & m64) % 100 < 30:
            at = created + (nx(draws) & m64) % (span + 1) if span > 0 else created
            c = find(self._use_ads, at, (nx(draws) & m64) >> 8)
            add((at, "ad_click", c, "salesforce", _SITE_PRODUCT if c is None else _SITE_PRODUCT + (utm[c] or self._utm(c))))
        if (nx(draws) & m64) % 100 < 20:
            at = created + (nx(draws) & m64) % (span + 1) if span > 0 else created
            roll = nx(draws) & m64
            add((at, "webinar_attended", find(self._use_webinar, at, roll >> 8) if roll % 100 < 90 else None,
                 "marketo", None))
        if sql_at is not None:
            for _ in range(1 + (nx(draws) & m64) % 2):
                add((sql_at + (nx(draws) & m64) % (horizon - sql_at + 1) if horizon > sql_at else sql_at,
                     "call", None, "salesforce", None))
        return evs

    def _tick_events(self, p: Person, t: int) -> list[_Ev]:
        """One touch at each tick that changed the person (after its creation tick)."""
        w = self.world
        space = w.people
        idx = p.idx
        # most people have no change tick at all: one dict lookup, as in _Space.changes
        if not t or idx % CHANGE_MODULUS not in space.change_ticks:
            return []
        ct = space.created_tick(idx)
        if t <= ct:
            return []
        changes = space.changes(idx, t, ct)
        if not changes:
            return []
        entered = {d: s for s, d in p.stage_dates.items()}
        system = self.email_system(idx)
        handle = self.social_handle(idx)
        out: list[_Ev] = []
        for k in changes:
            at = w.ticks[k]
            h = _h(self.seed, _S_TICK, idx, k)
            stage = entered.get(at)
            roll = h % 100
            c: int | None
            if stage == "lead":
                c = self._campaign_at(_CONTENT_SLOTS, at, h >> 8)
                out.append((at, "form_submission", c, "hubspot", f"{SITE}/ebook/marketing-factory"))
            elif stage == "marketingqualifiedlead":
                if p.email is not None:
                    c = self._campaign_at(_EMAIL_SLOTS[system], at, h >> 8)
                    out.append((at, "email_click", c, system, f"{SITE}/pricing"))
                else:
                    out.append((at, "page_view", None, "hubspot", f"{SITE}/pricing"))
            elif stage == "salesqualifiedlead":
                out.append((at, "webinar_attended", self._campaign_at(_WEBINAR_SLOTS, at, h >> 8),
                            "marketo", None))
            elif stage in ("opportunity", "customer"):
                out.append((at, "meeting", None, "salesforce", None))
            elif stage == "evangelist":
                if handle is not None:
                    out.append((at, "social_mention", None, "x",
                                tweet_url(handle, idx, at)))
                else:
                    out.append((at, "form_submission", None, "hubspot", SITE + "/review"))
            elif roll < 30 and p.email is not None:
                c = self._campaign_at(_EMAIL_SLOTS[system], at, h >> 8)
                out.append((at, "email_open", c, system, None))
            elif roll < 45 and handle is not None:
                out.append((at, "social_mention", self._campaign_at(_SOCIAL_SLOTS, at, h >> 8), "x",
                            tweet_url(handle, idx, at)))
            elif roll < 55 and _STAGE_RANK.get(p.lifecycle_stage, 0) >= _STAGE_RANK["salesqualifiedlead"] \
                    and p.lifecycle_stage != "other":
                out.append((at, "call", None, "salesforce", None))
            elif roll < 65:
                c = self._campaign_at(_ADS_SLOTS, at, h >> 8)
                out.append((at, "ad_click", c, "salesforce", f"{SITE}/product"))
            else:
                c = self._campaign_at(_CONTENT_SLOTS, at, h >> 8) if roll < 80 else None
                out.append((at, "page_view", c, "hubspot", SITE + _PAGES[(h >> 16) % len(_PAGES)]))
        return out

    def _last_touch_ms(self, idx: int, t: int) -> int:
        """Time of the person's last touch at tick ``t`` (cheap when a tick touched it)."""
        w = self.world
        space = w.people
        ct = space.created_tick(idx)
        changes = space.changes(idx, t, ct) if t > ct else []
        if changes:
            return w.ticks[changes[-1]]
        if ct > 0:
            return w.ticks[ct]
        p = w.person(idx, 0)
        return max(map(_at_of, self._base_events(p)))

    def _candidates(self, since_ms: int, t: int, span_ms: int) -> Iterator[int]:
        """Ascending unique indexes that may have activity at or after ``since_ms``: the base
        people created late enough (only when ``since_ms`` is before tick 0), then the change
        classes and new records of the ticks at or after ``since_ms``."""
        w = self.world
        space = w.people
        count = space.count(t)
        ranges: list[Iterable[int]] = []
        if since_ms <= self._end:
            span = since_ms - span_ms - self._start
            lo = 0 if span <= 0 else max(0, min(space.base_count, span * space.base_count // YEAR_MS - 1))
            ranges.append(range(lo, count))
        residues: set[int] = set()
        for k in range(1, t + 1):
            if w.ticks[k] < since_ms:
                continue
            r = space.change_res[k]
            if r not in residues:
                residues.add(r)
                ranges.append(range(r, count, 100))
            if space.cum_count[k] > space.cum_count[k - 1]:
                ranges.append(range(space.cum_count[k - 1], space.cum_count[k]))
        last = -1
        for i in heapq.merge(*ranges):
            if i != last:
                last = i
                yield i

    def people_touched_since(self, since_ms: int, t: int | None = None) -> Iterator[int]:
        """Indexes (ascending) of people with a touch at or after ``since_ms`` by tick ``t``:
        O(changed) for ``since_ms`` after tick 0."""
        w = self.world
        t = w.tick if t is None else t
        base_n = w.people.base_count
        for i in self._candidates(since_ms, t, ACTIVE_MS):
            # the first touch is at creation: no need to build journeys created after ``since_ms``
            first = self._start + i * YEAR_MS // base_n if i < base_n else w.ticks[0]
            if since_ms <= first or self._last_touch_ms(i, t) >= since_ms:
                yield i

    # -- orders --------------------------------------------------------------------------------------

    def shop_email(self, person_idx: int, p: Person | None = None, guest: bool = False) -> str:
        """The email the shop holds for a person: the CRM's (normalised, then 6% re-cased and 3%
        padded), the person's clean address when the CRM has none, and for 40% of guest buyers
        an address the CRM does not know."""
        w = self.world
        p = w.person(person_idx) if p is None else p
        h = _h(self.seed, _S_SHOPMAIL, person_idx)
        if guest and h % 100 < GUEST_OTHER_EMAIL_PCT:
            first, last, _ = w._name(person_idx)
            return f"{first[0]}{last}.{person_idx % 997}@{_FREE_MAIL[(h >> 8) % len(_FREE_MAIL)]}".lower()
        base = p.email.strip().lower() if p.email is not None else w._clean_email(person_idx)
        roll = (h >> 16) % 100
        if roll < SHOP_EMAIL_CASE_PCT:
            local, _, dom = base.partition("@")
            return f"{local.title()}@{dom.upper()}"
        if roll < SHOP_EMAIL_CASE_PCT + SHOP_EMAIL_SPACE_PCT:
            return f"{base} " if roll % 2 else f" {base}"
        return base

    def orders(self, person_idx: int, t: int | None = None) -> list[Order]:
        """The person's shop orders at tick ``t`` (default: now), by creation time."""
        w = self.world
        t = w.tick if t is None else t
        p = w.person(person_idx, t)
        return self._orders(p, t)

    def _buyer(self, p: Person) -> tuple[int | None, bool]:
        """(base customer date or None, is a guest buyer)."""
        # == the base stages' customer date, and (highest base rank < customer) and the guest roll
        cust = p.stage_dates.get("customer")
        if cust is not None and cust > (p.created_ms if p.idx >= self._base_n else self._end):
            cust = None
        if cust is not None or (hash((self.seed, _S_GUEST, p.idx, 0)) & _M64) % 100 >= GUEST_PCT:
            return cust, False  # a base customer has the customer rank: not a guest
        _, stages = self._base_stages(p)
        base_rank = max((_STAGE_RANK[s] for s, _ in stages if s != "other"), default=0)
        return None, base_rank < _CUSTOMER_RANK

    def _orders(self, p: Person, t: int, touches: list[Touch] | None = None) -> list[Order]:
        idx = p.idx
        customer_at = p.stage_dates.get("customer")
        # most people never buy: no customer stage and not a guest (the first half of _buyer)
        if customer_at is None and (hash((self.seed, _S_GUEST, idx, 0)) & _M64) % 100 >= GUEST_PCT:
            return []
        w = self.world
        cust, guest = self._buyer(p)
        space = w.people
        ct = space.created_tick(idx)
        changes = space.changes(idx, t, ct) if t > ct else []
        if cust is None and not guest and customer_at is None:
            return []
        rng = _Rng(self.seed, _S_ORDER, idx)
        created = p.created_ms
        grown = idx >= space.base_count
        horizon = created if grown else min(self._end, created + ACTIVE_MS)
        # (created, updated, cancelled)
        made: list[list[int | None]] = []
        if cust is not None:
            at = cust if grown else min(horizon, cust + rng.between(10 * MINUTE_MS, 6 * HOUR_MS))
            for n in range(1 if grown else 1 + rng.below(3)):
                if n:
                    at += rng.between(DAY_MS, 20 * DAY_MS)
                    if at > horizon:
                        break
                made.append([at, at, None])
        elif guest and not grown:
            at = rng.between(created, horizon)
            made.append([at, at, None])
            if rng.pct() < 25 and at + 3 * DAY_MS <= horizon:
                made.append([at + rng.between(DAY_MS, 3 * DAY_MS), 0, None])
                made[-1][1] = made[-1][0]
        for row in made:  # base cancellations and updates
            c0 = row[0]
            assert c0 is not None
            r = rng.pct()
            if r < CANCEL_PCT:
                row[2] = row[1] = min(horizon, c0 + rng.between(HOUR_MS, 48 * HOUR_MS))
            elif r < 70:
                row[1] = min(horizon, c0 + rng.between(HOUR_MS, 72 * HOUR_MS))
        for k in changes:  # tick orders and updates
            at = w.ticks[k]
            h = _h(self.seed, _S_ORDER, idx, k)
            is_customer = customer_at is not None and customer_at <= at
            roll = h % 100
            if (customer_at == at or ((is_customer or guest) and roll < 25)) and len(made) < ORDER_SLOTS:
                made.append([at, at, None])
            elif made and roll < 35:
                open_rows = [row for row in made if row[2] is None]
                if open_rows:
                    open_rows[-1][1] = open_rows[-1][2] = at
            elif made and roll < 60:
                made[-1][1] = at
        if not made:
            return []
        # the campaign of the last touch (with one) at or before each order's creation: the
        # touches' times and campaigns, from the events when no touches are given (no Touch built)
        lasts: list[int | None] = []
        last_campaign: int | None = None
        ti = 0
        if touches is None:
            evs = self._touch_events(p, t)
            n_evs = len(evs)
            for row in made:
                c0 = row[0]
                assert c0 is not None
                while ti < n_evs:
                    ev = evs[ti]
                    if ev[0] > c0:
                        break
                    if ev[2] is not None:
                        last_campaign = ev[2]
                    ti += 1
                lasts.append(last_campaign)
        else:
            for row in made:
                c0 = row[0]
                assert c0 is not None
                while ti < len(touches) and touches[ti].at_ms <= c0:
                    if touches[ti].campaign_idx is not None:
                        last_campaign = touches[ti].campaign_idx
                    ti += 1
                lasts.append(last_campaign)
        shop_email = self.shop_email(idx, p, guest)
        currency = _CURRENCY.get(p.country or "", "USD")
        out: list[Order] = []
        seed = self.seed
        utm = self._utm_query
        make = _OrderFields
        cls = Order
        x: Any
        for n, (c0, upd, cancelled) in enumerate(made):
            oidx = idx * ORDER_SLOTS + n
            h = hash((seed, _S_ORDER, oidx, -1)) & _M64
            lines = [_LINES[(h >> (8 + 4 * m)) % _N_PRODUCTS][(h >> (24 + 3 * m)) % 3] for m in range(1 + h % 3)]
            if (h >> 40) % 100 < REFUND_LINE_PCT:
                lines.append(_REFUND_LINES[(h >> 48) % 50])
            utm_roll = (h >> 32) % 100
            source = medium = campaign = None
            referring: str | None = None
            landing = _LANDING[lines[0].sku]
            last = lasts[n]
            if last is not None and utm_roll < UTM_CAMPAIGN_PCT:
                source, medium = _UTM[_SLOTS[last % 10][1]]
                campaign = self.campaign_slug(last)
                landing += utm[last] or self._utm(last)  # == ?utm_source=..&utm_medium=..&utm_campaign=..
                referring = _REFERRING[medium]
            elif utm_roll >= 100 - UTM_UNKNOWN_PCT:
                source, medium, campaign = "partner", "referral", "summer-sale"
                landing += "?utm_source=partner&utm_medium=referral&utm_campaign=summer-sale"
                referring = _REFERRING[medium]
            elif utm_roll < 70:
                referring = "https://www.google.com/"
            # Order(oidx, idx, number, shop_email, c0, upd, cancelled, test, currency, lines, landing,
            # referring, source, medium, campaign), filled as an _OrderFields
            x = make()
            x.idx = oidx
            x.person_idx = idx
            x.number = f"#{1001 + oidx}"
            x.email = shop_email
            x.created_ms = c0
            x.updated_ms = upd
            x.cancelled_ms = cancelled
            x.test = (h >> 52) % 1000 < TEST_ORDER_PER_MILLE
            x.currency = currency
            x.lines = tuple(lines)
            x.landing_site = landing
            x.referring_site = referring
            x.utm_source = source
            x.utm_medium = medium
            x.utm_campaign = campaign
            x.__class__ = cls
            out.append(x)
        return out

    def people_with_orders_since(self, since_ms: int, t: int | None = None) -> Iterator[int]:
        """Indexes (ascending) of people with an order created or updated at or after
        ``since_ms`` by tick ``t``: O(changed) for ``since_ms`` after tick 0."""
        w = self.world
        t = w.tick if t is None else t
        for i in self._candidates(since_ms, t, ACTIVE_MS):
            p = w.person(i, t)
            if "customer" not in p.stage_dates and _h(self.seed, _S_GUEST, i) % 100 >= GUEST_PCT:
                continue
            if any(o.updated_ms >= since_ms for o in self._orders(p, t)):
                yield i



# -------------------------------------------------------------------------------------------------
# measured overlaps (docs/journeys.md quotes these for seed 7, size 2000)
# -------------------------------------------------------------------------------------------------


def journey_stats(j: Journeys, t: int | None = None) -> dict[str, tuple[int, int]]:
    """Exact counts ``name -> (numerator, denominator)`` over the whole population at tick ``t``.
    O(population): for documentation and tests at small sizes, not for emulators."""
    w = j.world
    t = w.tick if t is None else t
    count = w.people.count(t)
    people = [w.person(i, t) for i in range(count)]
    crm_emails = {p.email.strip().lower() for p in people if p.email is not None}
    in_system = dict.fromkeys(("hubspot", "marketo", "mailchimp", "salesforce", "x", "shop"), 0)
    touches = no_campaign = authors = authors_known = handles = handles_known = 0
    orders = prior_touch = prior_campaign = utm_named = utm_unknown = test = cancelled = refund = 0
    email_variant = email_unknown = guest_orders = with_orders = 0
    sales_needed = sales_ok = linkable = 0
    members: dict[str, set[tuple[int, int]]] = {s: set() for s in ("hubspot", "marketo", "mailchimp", "salesforce")}
    campaign_system = [j.campaign(c, t).system for c in range(j.campaign_count())]
    tick_touches = 0
    for p in people:
        ts = j._touches(p, t)
        os_ = j._orders(p, t, ts)
        touches += len(ts)
        no_campaign += sum(1 for x in ts if x.campaign_idx is None)
        tick_touches += sum(1 for x in ts if x.at_ms >= w.ticks[0])
        for x in ts:
            if x.campaign_idx is not None:
                members[campaign_system[x.campaign_idx]].add((x.campaign_idx, p.idx))
        for system in {x.system for x in ts}:
            in_system[system] += 1
        if j.social_handle(p.idx) is not None:
            handles += 1
            handles_known += j.crm_knows_handle(p.idx)
        if any(x.kind == "social_mention" for x in ts):
            authors += 1
            authors_known += j.crm_knows_handle(p.idx)
        if "opportunity" in p.stage_dates or "customer" in p.stage_dates:
            sales_needed += 1
            sales_ok += any(x.kind in SALES_KINDS and x.system == "salesforce" for x in ts)
        if os_:
            in_system["shop"] += 1
            with_orders += 1
        _, guest = j._buyer(p)
        crm = p.email.strip().lower() if p.email is not None else None
        for o in os_:
            orders += 1
            guest_orders += guest
            prior = [x for x in ts if x.at_ms <= o.created_ms]
            prior_touch += bool(prior)
            prior_campaign += any(x.campaign_idx is not None for x in prior)
            if o.utm_campaign is not None:
                if j.campaign_by_slug(o.utm_campaign) is not None:
                    utm_named += 1
                else:
                    utm_unknown += 1
            test += o.test
            cancelled += o.cancelled_ms is not None
            refund += any(line.unit_price_cents < 0 for line in o.lines)
            norm = o.email.strip().lower()
            email_unknown += norm not in crm_emails
            email_variant += o.email != norm and norm == crm
            linkable += norm == crm
    return {
        "touches_per_person": (touches, count),
        "touches_without_campaign": (no_campaign, touches),
        "touches_at_ticks": (tick_touches, touches),
        "campaign_members_hubspot": (len(members["hubspot"]), count),
        "campaign_members_marketo": (len(members["marketo"]), count),
        "campaign_members_mailchimp": (len(members["mailchimp"]), count),
        "campaign_members_salesforce": (len(members["salesforce"]), count),
        "people_in_hubspot": (in_system["hubspot"], count),
        "people_in_marketo": (in_system["marketo"], count),
        "people_in_mailchimp": (in_system["mailchimp"], count),
        "people_in_salesforce": (in_system["salesforce"], count),
        "people_on_x": (in_system["x"], count),
        "people_in_shop": (in_system["shop"], count),
        "people_with_handle": (handles, count),
        "handles_known_to_crm": (handles_known, handles),
        "x_authors_known_to_crm": (authors_known, authors),
        "opportunities_with_sales_touch": (sales_ok, sales_needed),
        "orders_per_buyer": (orders, with_orders),
        "orders_with_prior_touch": (prior_touch, orders),
        "orders_with_prior_campaign_touch": (prior_campaign, orders),
        "orders_with_utm_campaign": (utm_named, orders),
        "orders_with_unknown_utm_campaign": (utm_unknown, orders),
        "orders_test": (test, orders),
        "orders_cancelled": (cancelled, orders),
        "orders_with_refund_line": (refund, orders),
        "orders_by_guests": (guest_orders, orders),
        "orders_email_unknown_to_crm": (email_unknown, orders),
        "orders_email_is_the_persons_crm_email": (linkable, orders),
        "orders_email_case_or_space_variant": (email_variant, orders),
    }


def main() -> None:  # pragma: no cover - `python -m sandbox.journeys [seed] [size] [ticks]`
    import sys

    from sandbox.world import parse_time

    seed, size, ticks = (int(a) for a in (sys.argv[1:] + ["7", "2000", "3"][len(sys.argv) - 1:])[:3])
    t0 = parse_time("2026-01-01T00:00:00Z")
    world = World(seed=seed, size=size, ticks=[t0 + k * HOUR_MS for k in range(ticks + 1)])
    for name, (num, den) in journey_stats(Journeys(world)).items():
        print(f"{name:38} {num:>7} / {den:<7} {num / den if den else 0:.4f}")


if __name__ == "__main__":
    main()
