"""The Salesforce objects the emulator serves, built from the sandbox world and its journeys.

Every object is a pure function of (world seed, index, tick): ``row(idx, t)`` gives the field
values (datetimes as epoch ms, dates as ``YYYY-MM-DD``) or ``None`` when index ``idx`` is not a
record of this object at tick ``t`` (a person is a Lead always and a Contact once converted).
``indexes(t, since_ms)`` enumerates candidate indexes in ascending order: all of them, or (with a
lower bound on SystemModstamp) only those a change since then can have touched, O(changed).
``scan(t, since_ms)`` gives the records among them, in that order, with only IsDeleted and
SystemModstamp (= LastModifiedDate), as compact arrays: a query that filters and sorts on those
alone never builds a row it does not serve.

Ids are 18-character Salesforce ids: key prefix, a fixed pod ``5g``, the index in base 62 (10
characters, ASCII-ordered so that ``ORDER BY Id`` is index order) and the case-safe suffix.
"""

from __future__ import annotations

import functools
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import numpy as np

from sandbox.world import DAY_MS, OWNERS, World

__all__ = ["CHILD_STRIDE", "Field", "SObject", "Scan", "build_objects", "parse_id", "sf_date", "sf_datetime", "sf_id"]

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
POD = "5g"
#: person-owned child records (campaign members, tasks, events): index = person * stride + child
CHILD_STRIDE = 1_000_000
ORG_ID_15 = "00D5g00000SbXy1"
OWNER_FIRST = ("Alex", "Sam", "Jordan", "Casey", "Riley", "Morgan", "Taylor", "Jamie", "Avery", "Quinn", "Drew",
               "Parker")


@functools.lru_cache(maxsize=1 << 16)
def _chunk_char(chunk: str) -> str:
    bits = 0
    for i, ch in enumerate(chunk):
        if "A" <= ch <= "Z":
            bits |= 1 << i
    return _SUFFIX[bits]


def _suffix(id15: str) -> str:
    # chunks repeat across ids (prefix + pod, leading zeros): cached, ids are built per served record
    return _chunk_char(id15[:5]) + _chunk_char(id15[5:10]) + _chunk_char(id15[10:15])


#: two base-62 digits per step: ids are built for every record served
_B62_PAIRS = [a + b for a in _B62 for b in _B62]


def sf_id(prefix: str, idx: int) -> str:
    n, pairs = idx, []
    for _ in range(5):
        n, r = divmod(n, 3844)
        pairs.append(_B62_PAIRS[r])
    id15 = prefix + POD + "".join(reversed(pairs))
    return id15 + _suffix(id15)


def parse_id(value: str) -> tuple[str, int] | None:
    """(key prefix, index) of an id this emulator issued (15 or 18 characters), else ``None``."""
    if len(value) not in (15, 18) or value[3:5] != POD:
        return None
    if len(value) == 18 and _suffix(value[:15]) != value[15:]:
        return None
    n = 0
    for ch in value[5:15]:
        k = _B62.find(ch)
        if k < 0:
            return None
        n = n * 62 + k
    return value[:3], n


ORG_ID = ORG_ID_15 + _suffix(ORG_ID_15)
_INTEGRATION_USER = sf_id("005", 0)


def sf_datetime(ms: int) -> str:
    """``2013-05-07T22:07:19.000+0000``, Salesforce's REST datetime format."""
    sec, milli = divmod(ms, 1000)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{milli:03d}+0000"


def sf_date(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%d")


@functools.lru_cache(maxsize=64)
def owner_user_id(owner: int) -> str:
    return sf_id("005", OWNERS.index(owner))


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # id reference string email phone picklist boolean datetime date currency double int percent
    #            textarea url address
    label: str = ""
    custom: bool = False
    reference_to: tuple[str, ...] = ()
    picklist: tuple[str, ...] = ()
    compound: str | None = None  # compound (address) field this component belongs to
    formula: str | None = None  # a formula field (calculated; its value changes without SystemModstamp)
    nillable: bool = True
    length: int = 0


#: (indexes, IsDeleted, SystemModstamp) of an object's records: int64, bool, int64 arrays
Scan = tuple[np.ndarray, np.ndarray, np.ndarray]
#: one record's (IsDeleted, SystemModstamp), or None when the index is not a record
Stamp = tuple[bool, int] | None


def _scan_arrays(idx: array, deleted: bytearray, modified: array) -> Scan:
    return (np.frombuffer(idx, dtype=np.int64) if idx else np.zeros(0, np.int64),
            np.frombuffer(deleted, dtype=np.bool_) if deleted else np.zeros(0, np.bool_),
            np.frombuffer(modified, dtype=np.int64) if modified else np.zeros(0, np.int64))


_at_of = itemgetter(0)


def _ints(a: np.ndarray) -> Iterator[int]:
    """The array's values as Python ints, a slice at a time (not a list of a million ints)."""
    for k in range(0, len(a), 1 << 16):
        yield from a[k:k + (1 << 16)].tolist()


def _scan_by_stamp(indexes: Iterable[int], stamp: Callable[[int], Stamp]) -> Scan:
    idx, deleted, modified = array("q"), bytearray(), array("q")
    for i in indexes:
        s = stamp(i)
        if s is not None:
            idx.append(i)
            deleted.append(s[0])
            modified.append(s[1])
    return _scan_arrays(idx, deleted, modified)


@dataclass
class SObject:
    name: str
    label: str
    plural: str
    prefix: str
    fields: list[Field]
    row: Callable[[int, int], dict[str, Any] | None]
    indexes: Callable[[int, int | None], Iterable[int]]
    custom: bool = False
    by_lower: dict[str, Field] = field(default_factory=dict)
    #: the records' stamps without their rows (default: from the rows)
    scanner: Callable[[int, int | None], Scan] | None = None

    def __post_init__(self) -> None:
        self.by_lower = {f.name.lower(): f for f in self.fields}

    def scan(self, t: int, since: int | None) -> Scan:
        if self.scanner is not None:
            return self.scanner(t, since)

        def stamp(i: int) -> Stamp:
            row = self.row(i, t)
            return None if row is None else (row["IsDeleted"], row["SystemModstamp"])
        return _scan_by_stamp(self.indexes(t, since), stamp)


def _system_fields(owner: bool = True) -> list[Field]:
    out = [Field("Id", "id", "Record ID", nillable=False, length=18),
           Field("IsDeleted", "boolean", "Deleted", nillable=False)]
    if owner:
        out.append(Field("OwnerId", "reference", "Owner ID", reference_to=("Group", "User"), nillable=False,
                         length=18))
    out += [Field("CreatedDate", "datetime", "Created Date", nillable=False),
            Field("CreatedById", "reference", "Created By ID", reference_to=("User",), nillable=False, length=18),
            Field("LastModifiedDate", "datetime", "Last Modified Date", nillable=False),
            Field("LastModifiedById", "reference", "Last Modified By ID", reference_to=("User",), nillable=False,
                  length=18),
            Field("SystemModstamp", "datetime", "System Modstamp", nillable=False)]
    return out


def _address(prefix: str, compound: str, label: str) -> list[Field]:
    return [Field(f"{prefix}Street", "textarea", f"{label} Street", compound=compound, length=255),
            Field(f"{prefix}City", "string", f"{label} City", compound=compound, length=40),
            Field(f"{prefix}State", "string", f"{label} State/Province", compound=compound, length=80),
            Field(f"{prefix}PostalCode", "string", f"{label} Zip/Postal Code", compound=compound, length=20),
            Field(f"{prefix}Country", "string", f"{label} Country", compound=compound, length=80),
            Field(f"{prefix}Latitude", "double", f"{label} Latitude", compound=compound),
            Field(f"{prefix}Longitude", "double", f"{label} Longitude", compound=compound),
            Field(f"{prefix}GeocodeAccuracy", "picklist", f"{label} Geocode Accuracy", compound=compound,
                  picklist=("Address", "NearAddress", "Block", "Street", "ExtendedZip", "Zip", "City", "State",
                            "Country", "Unknown")),
            Field(compound, "address", f"{label} Address")]


def address_value(row: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    parts = {"city": row.get(f"{prefix}City"), "country": row.get(f"{prefix}Country"),
             "geocodeAccuracy": row.get(f"{prefix}GeocodeAccuracy"), "latitude": row.get(f"{prefix}Latitude"),
             "longitude": row.get(f"{prefix}Longitude"), "postalCode": row.get(f"{prefix}PostalCode"),
             "state": row.get(f"{prefix}State"), "street": row.get(f"{prefix}Street")}
    return parts if any(v is not None for v in parts.values()) else None


def _stamp(row: dict[str, Any], created: int, modified: int, owner: str | None, deleted: bool) -> dict[str, Any]:
    row.update({"IsDeleted": deleted, "CreatedDate": created, "CreatedById": _INTEGRATION_USER,
                "LastModifiedDate": modified, "LastModifiedById": owner or _INTEGRATION_USER,
                "SystemModstamp": modified})
    if owner is not None:
        row["OwnerId"] = owner
    return row


_REGIONS = {"United States": "NA", "USA": "NA", "US": "NA", "united states": "NA", "Canada": "NA",
            "Mexico": "LATAM", "Brazil": "LATAM", "Argentina": "LATAM", "Chile": "LATAM", "Colombia": "LATAM",
            "Japan": "APAC", "India": "APAC", "Australia": "APAC", "Singapore": "APAC", "China": "APAC",
            "South Korea": "APAC", "New Zealand": "APAC"}
_LEAD_SOURCE = {"ORGANIC_SEARCH": "Web", "PAID_SEARCH": "Advertisement", "EMAIL_MARKETING": "Email",
                "SOCIAL_MEDIA": "Social", "REFERRALS": "Partner Referral", "OTHER_CAMPAIGNS": "Other",
                "DIRECT_TRAFFIC": "Web", "OFFLINE": "Trade Show", "PAID_SOCIAL": "Advertisement"}
_CONVERTED_STAGES = ("opportunity", "customer", "evangelist")
_LEAD_STAGES = ("lead", "marketingqualifiedlead", "salesqualifiedlead", *_CONVERTED_STAGES)
#: stages of a person who can have sales touches (calls, meetings: Tasks and Events)
_SALES_STAGES = frozenset({"salesqualifiedlead", *_CONVERTED_STAGES})
_STAGE_NAMES = {"appointmentscheduled": "Prospecting", "qualifiedtobuy": "Qualification",
                "presentationscheduled": "Needs Analysis", "decisionmakerboughtin": "Proposal/Price Quote",
                "contractsent": "Negotiation/Review", "closedwon": "Closed Won", "closedlost": "Closed Lost"}
_PROBABILITY = {"appointmentscheduled": 10.0, "qualifiedtobuy": 20.0, "presentationscheduled": 50.0,
                "decisionmakerboughtin": 75.0, "contractsent": 90.0, "closedwon": 100.0, "closedlost": 0.0}
_INDUSTRIES = {"COMPUTER_SOFTWARE": "Technology", "INFORMATION_TECHNOLOGY_AND_SERVICES": "Technology",
               "MARKETING_AND_ADVERTISING": "Media", "FINANCIAL_SERVICES": "Finance", "HOSPITAL_HEALTH_CARE":
               "Healthcare", "RETAIL": "Retail", "CONSUMER_GOODS": "Consumer Products"}
_CAMPAIGN_TYPES = {"email": "Email", "webinar": "Webinar", "event": "Conference", "ads": "Advertisement",
                   "social": "Social Media", "content": "Other"}
_TIERS = ("Bronze", "Silver", "Gold", "Platinum")


def _region(country: str | None) -> str | None:
    if country is None:
        return None
    return _REGIONS.get(country, "EMEA")


def _campaign_status(status: str) -> str:
    s = status.lower()
    if "plan" in s:
        return "Planned"
    if "progress" in s or "active" in s or "running" in s or "live" in s:
        return "In Progress"
    if "complete" in s or "end" in s or "done" in s or "finish" in s:
        return "Completed"
    if "abort" in s or "cancel" in s:
        return "Aborted"
    return status.replace("_", " ").title()


#: a touch as ``(at_ms, kind, campaign_idx, system, url)``; its ``seq`` is its position in the journey
Ev = tuple[Any, ...]
_AT, _KIND, _CAMPAIGN, _SYSTEM, _URL = range(5)


class _Journeys:
    """The shared journeys (``sandbox.journeys``), or nothing while that module does not exist.

    Journeys are read as plain tuples (``Ev``): ``Journeys.touches`` builds a ``Touch`` per event
    and a ``World.person``. They come from ``Journeys._touch_events`` (or, in a tree without it,
    from ``_base_events`` and ``_tick_events`` as ``Journeys._touches`` puts them together) while
    those give what ``touches`` gives on the first journeys read (else from ``touches``)."""

    #: journeys checked against ``Journeys.touches`` before the parts are trusted
    CHECKS = 8

    def __init__(self, world: World) -> None:
        self.world = world
        try:
            from sandbox.journeys import Journeys
        except ImportError:
            self.j: Any = None
        else:
            self.j = Journeys(world)
        self._lock = threading.Lock()
        self._events: OrderedDict[tuple[int, int], list[Ev]] = OrderedDict()
        self._people: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._campaigns: dict[int, Any] = {}
        self._events_of: Callable[[Any, int], list[Ev]] | None = getattr(self.j, "_touch_events", None)
        self._base = getattr(self.j, "_base_events", None)
        self._ticked = getattr(self.j, "_tick_events", None)
        self._checks = self.CHECKS

    @property
    def available(self) -> bool:
        return self.j is not None

    def campaign(self, c: int) -> Any:
        found = self._campaigns.get(c)
        if found is None:
            found = self._campaigns[c] = self.j.campaign(c)
        return found

    def _public(self, p: int, t: int) -> list[Ev]:
        return [(x.at_ms, x.kind, x.campaign_idx, x.system, x.url) for x in self.j.touches(p, t)]

    def of_person(self, person: Any, t: int) -> list[Ev]:
        """The journey of ``person`` (``World.person(i, t)``) at tick ``t``."""
        evs: list[Ev]
        if self._events_of is not None:
            evs = self._events_of(person, t)
        elif self._base is not None and self._ticked is not None:
            evs = self._base(person)
            evs.sort(key=_at_of)  # stable: same-time events keep their causal order
            evs.extend(self._ticked(person, t))
        else:
            return self._public(person.idx, t)
        if self._checks > 0:
            self._checks -= 1
            if evs != self._public(person.idx, t):  # they changed meaning: the public way only
                self._events_of = self._base = self._ticked = None
                return self._public(person.idx, t)
        return evs

    def person(self, p: int, t: int) -> Any:
        """``World.person(p, t)``, kept for the next few asks (a row asks for it more than once)."""
        key = (p, t)
        with self._lock:
            found = self._people.get(key)
            if found is not None:
                return found
        found = self.world.person(p, t)
        with self._lock:
            self._people[key] = found
            if len(self._people) > 256:
                self._people.popitem(last=False)
        return found

    def events(self, p: int, t: int) -> list[Ev]:
        key = (p, t)
        with self._lock:
            found = self._events.get(key)
            if found is not None:
                self._events.move_to_end(key)
                return found
        found = self.of_person(self.person(p, t), t)
        with self._lock:
            self._events[key] = found
            while len(self._events) > 4096:
                self._events.popitem(last=False)
        return found


@dataclass
class _Walk:
    """What one tick's full walk of the journeys found so far."""

    #: the sales people were walked: Tasks and Events are complete, with those people's members
    sales: bool = False
    #: the other leads were walked too: CampaignMember is complete
    rest: bool = False
    call: Scan = field(default_factory=lambda: _scan_arrays(array("q"), bytearray(), array("q")))
    meeting: Scan = field(default_factory=lambda: _scan_arrays(array("q"), bytearray(), array("q")))
    member: Scan = field(default_factory=lambda: _scan_arrays(array("q"), bytearray(), array("q")))

    def covers(self, group: str) -> bool:
        return self.sales and (group == "activities" or self.rest)

    def add_members(self, found: Scan) -> None:
        if not len(self.member[0]):
            self.member = found
        elif len(found[0]):  # people walked apart: back in index order (ids are unique)
            idx = np.concatenate([self.member[0], found[0]])
            order = np.argsort(idx, kind="stable")
            self.member = (idx[order], np.concatenate([self.member[1], found[1]])[order],
                           np.concatenate([self.member[2], found[2]])[order])

    def scans(self) -> dict[str, Scan]:
        return {"member": self.member, "call": self.call, "meeting": self.meeting}


def build_objects(world: World) -> dict[str, SObject]:
    w = world
    jr = _Journeys(world)

    def tick_ms(t: int) -> int:
        return w.ticks[t]

    def world_indexes(space: Any) -> Callable[[int, int | None], Iterable[int]]:
        def indexes(t: int, since: int | None) -> Iterable[int]:
            if since is None:
                return range(space.count(t))
            return sorted(set(w.changed_since(space, since, t)))
        return indexes

    def converted(stage: str) -> bool:
        return stage in _CONVERTED_STAGES

    def converted_ms(p: Any) -> int:
        dates = [p.stage_dates[s] for s in _CONVERTED_STAGES if s in p.stage_dates]
        return min(dates) if dates else p.created_ms

    def lead_ms(p: Any) -> int | None:
        """When the person became a sales lead (None: still a subscriber, or outside the funnel)."""
        dates = [p.stage_dates[s] for s in _LEAD_STAGES if s in p.stage_dates]
        return min(dates) if dates else None

    names: dict[int, str] = {}

    def company_name(j: int, t: int) -> str:
        """Company names never change, so they are computed once (a bounded cache)."""
        name = names.get(j)
        if name is None:
            name = w.company(j, t).name
            if len(names) < 200_000:
                names[j] = name
        return name

    def clean_email(email: str | None) -> str | None:
        return email.strip() if email is not None else None  # Salesforce trims text fields on save

    # -- stamps (IsDeleted, SystemModstamp) without rows -----------------------------------------
    # Lead, Contact and OpportunityContactRole exist by the person's stage (and only people in a
    # sales stage have Tasks and Events): one pass over the people per tick keeps a byte of flags
    # and the last-modified time of each (9 bytes a person)
    is_lead, is_contact, is_archived, is_sales = 1, 2, 4, 8
    digest_lock, build_lock = threading.Lock(), threading.Lock()
    digest: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    lead_stages, converted_stages = frozenset(_LEAD_STAGES), frozenset(_CONVERTED_STAGES)

    def person_flags(p: Any) -> int:
        # once per person per full scan: lead_ms(p) is not None, converted(...), without their lists
        stage = p.lifecycle_stage
        return ((0 if lead_stages.isdisjoint(p.stage_dates) else is_lead)
                | (is_contact if stage in converted_stages else 0)
                | (is_archived if p.archived_ms is not None else 0)
                | (is_sales if stage in _SALES_STAGES else 0))

    def people_digest(t: int, build: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """(flags, modified ms) of every person at tick ``t``; built only when ``build`` (a full scan)."""
        with digest_lock:
            found = digest.get(t)
        if found is not None or not build:
            return found
        with build_lock:  # a second full scan waits for the first one's digest
            with digest_lock:
                found = digest.get(t)
                prev = next(iter(digest.items()), None)
            if found is not None:
                return found
            n = w.people.count(t)
            flags, modified = bytearray(n), array("q", bytes(8 * n))
            person = w.person
            todo: Iterable[int] = range(n)
            if prev is not None and prev[0] < t:
                # an earlier tick's digest: only the people changed, archived or added since differ
                old_flags, old_modified = prev[1]
                flags[:len(old_flags)] = old_flags.tobytes()
                modified[:len(old_modified)] = array("q", old_modified.tobytes())
                todo = sorted(set(w.changed_since(w.people, w.ticks[prev[0]] + 1, t)))
            for i in todo:
                p = person(i, t)
                flags[i] = person_flags(p)
                modified[i] = p.modified_ms
            found = (np.frombuffer(flags, dtype=np.uint8), np.frombuffer(modified, dtype=np.int64))
            with digest_lock:
                digest.clear()  # the latest tick only
                digest[t] = found
        return found

    def build_digest_with(t: int, want: int, skip: int, visit: Callable[[Any, int], None]) -> bool:
        """Build the people digest of tick ``t`` in a pass that also calls ``visit(person, flags)`` on
        each person with a flag of ``want`` and none of ``skip`` (each person is built once); False,
        doing nothing, when a digest exists (this tick's, or an earlier one to update)."""
        with build_lock:
            with digest_lock:
                if digest:
                    return False
            n = w.people.count(t)
            flags, modified = bytearray(n), array("q", bytes(8 * n))
            person = w.person
            for i in range(n):
                p = person(i, t)
                f = person_flags(p)
                flags[i] = f
                modified[i] = p.modified_ms
                if f & want and not f & skip:
                    visit(p, f)
            found = (np.frombuffer(flags, dtype=np.uint8), np.frombuffer(modified, dtype=np.int64))
            with digest_lock:
                digest.clear()
                digest[t] = found
        return True

    def person_stamp(i: int, t: int, bit: int) -> Stamp:
        if not 0 <= i < w.people.count(t):
            return None
        p = w.person(i, t)
        flags = person_flags(p)
        return (bool(flags & is_archived), p.modified_ms) if flags & bit else None

    def person_scanner(bit: int) -> Callable[[int, int | None], Scan]:
        def scan(t: int, since: int | None) -> Scan:
            found = people_digest(t, since is None)
            if found is None:
                return _scan_by_stamp(world_indexes(w.people)(t, since), lambda i: person_stamp(i, t, bit))
            flags, modified = found
            mask = (flags & bit) != 0
            if since is not None:  # exactly the records a change since then touched
                mask &= modified >= since
            idx = np.flatnonzero(mask).astype(np.int64)
            return idx, (flags[idx] & is_archived) != 0, modified[idx]
        return scan

    def space_scanner(space: Any) -> Callable[[int, int | None], Scan]:
        def scan(t: int, since: int | None) -> Scan:
            return _scan_by_stamp(world_indexes(space)(t, since),
                                  lambda i: (w.is_archived(space, i, t), w.modified_ms(space, i, t)))
        return scan

    # -- Lead ------------------------------------------------------------------------------------
    lead_fields = [
        *_system_fields(),
        Field("FirstName", "string", "First Name", length=40), Field("LastName", "string", "Last Name",
                                                                     nillable=False, length=80),
        Field("Name", "string", "Full Name", length=121), Field("Title", "string", "Title", length=128),
        Field("Company", "string", "Company", nillable=False, length=255),
        Field("Email", "email", "Email", length=80), Field("Phone", "phone", "Phone", length=40),
        *_address("", "Address", "Lead"),
        Field("Status", "picklist", "Status", nillable=False,
              picklist=("Open - Not Contacted", "Working - Contacted", "Closed - Converted",
                        "Closed - Not Converted")),
        Field("LeadSource", "picklist", "Lead Source", picklist=tuple(sorted(set(_LEAD_SOURCE.values())))),
        Field("Rating", "picklist", "Rating", picklist=("Hot", "Warm", "Cold")),
        Field("IsConverted", "boolean", "Converted", nillable=False),
        Field("ConvertedDate", "date", "Converted Date"),
        Field("ConvertedAccountId", "reference", "Converted Account ID", reference_to=("Account",), length=18),
        Field("ConvertedContactId", "reference", "Converted Contact ID", reference_to=("Contact",), length=18),
        Field("ConvertedOpportunityId", "reference", "Converted Opportunity ID", reference_to=("Opportunity",),
              length=18),
        Field("Region__c", "picklist", "Region", custom=True, picklist=("NA", "EMEA", "APAC", "LATAM")),
    ]

    def lead_row(i: int, t: int) -> dict[str, Any] | None:
        if not 0 <= i < w.people.count(t):
            return None
        p = w.person(i, t)
        became_lead = lead_ms(p)
        if became_lead is None:  # subscribers (and "other") live in marketing tools, not in the CRM
            return None
        conv = converted(p.lifecycle_stage)
        company = company_name(p.company_idx, t) if p.company_idx is not None else f"{p.last_name} household"
        if conv:
            status = "Closed - Converted"
        elif p.lead_status == "UNQUALIFIED":
            status = "Closed - Not Converted"
        elif p.lifecycle_stage in ("marketingqualifiedlead", "salesqualifiedlead"):
            status = "Working - Contacted"
        else:
            status = "Open - Not Contacted"
        deals = w.deals_of_person(i, t)
        row = {"Id": sf_id("00Q", i), "FirstName": p.first_name, "LastName": p.last_name,
               "Name": f"{p.first_name} {p.last_name}", "Title": p.job_title, "Company": company,
               "Email": clean_email(p.email), "Phone": p.phone, "Street": None, "City": p.city, "State": p.state,
               "PostalCode": None, "Country": p.country, "Latitude": None, "Longitude": None,
               "GeocodeAccuracy": None, "Status": status, "LeadSource": _LEAD_SOURCE.get(p.source, "Other"),
               "Rating": "Hot" if p.lead_score >= 60 else "Warm" if p.lead_score >= 30 else "Cold",
               "IsConverted": conv, "ConvertedDate": sf_date(converted_ms(p)) if conv else None,
               "ConvertedAccountId": sf_id("001", p.company_idx) if conv and p.company_idx is not None else None,
               "ConvertedContactId": sf_id("003", i) if conv else None,
               "ConvertedOpportunityId": sf_id("006", deals[0]) if conv and deals else None,
               "Region__c": _region(p.country)}
        return _stamp(row, became_lead, p.modified_ms, owner_user_id(p.owner_id), p.archived_ms is not None)

    # -- Contact ---------------------------------------------------------------------------------
    contact_fields = [
        *_system_fields(),
        Field("AccountId", "reference", "Account ID", reference_to=("Account",), length=18),
        Field("FirstName", "string", "First Name", length=40), Field("LastName", "string", "Last Name",
                                                                     nillable=False, length=80),
        Field("Name", "string", "Full Name", length=121), Field("Title", "string", "Title", length=128),
        Field("Email", "email", "Email", length=80), Field("Phone", "phone", "Business Phone", length=40),
        *_address("Mailing", "MailingAddress", "Mailing"),
        Field("LeadSource", "picklist", "Lead Source", picklist=tuple(sorted(set(_LEAD_SOURCE.values())))),
        Field("Preferred_Channel__c", "picklist", "Preferred Channel", custom=True,
              picklist=("email", "phone", "linkedin", "events", "webinar")),
    ]

    def contact_row(i: int, t: int) -> dict[str, Any] | None:
        if not 0 <= i < w.people.count(t):
            return None
        p = w.person(i, t)
        if not converted(p.lifecycle_stage):
            return None
        row = {"Id": sf_id("003", i),
               "AccountId": sf_id("001", p.company_idx) if p.company_idx is not None else None,
               "FirstName": p.first_name, "LastName": p.last_name, "Name": f"{p.first_name} {p.last_name}",
               "Title": p.job_title, "Email": clean_email(p.email), "Phone": p.phone, "MailingStreet": None,
               "MailingCity": p.city, "MailingState": p.state, "MailingPostalCode": None, "MailingCountry": p.country,
               "MailingLatitude": None, "MailingLongitude": None, "MailingGeocodeAccuracy": None,
               "LeadSource": _LEAD_SOURCE.get(p.source, "Other"), "Preferred_Channel__c": p.preferred_channel}
        return _stamp(row, converted_ms(p), p.modified_ms, owner_user_id(p.owner_id), p.archived_ms is not None)

    # -- Account ---------------------------------------------------------------------------------
    account_fields = [
        *_system_fields(),
        Field("Name", "string", "Account Name", nillable=False, length=255),
        Field("Website", "url", "Website", length=255), Field("Phone", "phone", "Account Phone", length=40),
        Field("Industry", "picklist", "Industry", picklist=tuple(sorted(set(_INDUSTRIES.values())))),
        Field("NumberOfEmployees", "int", "Employees"), Field("AnnualRevenue", "currency", "Annual Revenue"),
        Field("Type", "picklist", "Account Type", picklist=("Prospect", "Customer - Direct", "Other")),
        *_address("Billing", "BillingAddress", "Billing"),
        Field("Tier__c", "picklist", "Tier", custom=True, picklist=_TIERS),
    ]

    def account_row(j: int, t: int) -> dict[str, Any] | None:
        if not 0 <= j < w.companies.count(t):
            return None
        c = w.company(j, t)
        row = {"Id": sf_id("001", j), "Name": c.name, "Website": f"https://www.{c.domain}", "Phone": c.phone,
               "Industry": _INDUSTRIES.get(c.industry, "Other") if c.industry else None,
               "NumberOfEmployees": c.employees,
               "AnnualRevenue": float(c.annual_revenue) if c.annual_revenue is not None else None,
               "Type": "Customer - Direct" if c.lifecycle_stage in ("customer", "evangelist") else "Prospect",
               "BillingStreet": None, "BillingCity": c.city, "BillingState": c.state, "BillingPostalCode": None,
               "BillingCountry": c.country, "BillingLatitude": None, "BillingLongitude": None,
               "BillingGeocodeAccuracy": None,
               "Tier__c": None if c.employees is None else _TIERS[min(3, len(str(c.employees)) - 1)]}
        return _stamp(row, c.created_ms, c.modified_ms, owner_user_id(c.owner_id), c.archived_ms is not None)

    # -- Opportunity -----------------------------------------------------------------------------
    opp_fields = [
        *_system_fields(),
        Field("Name", "string", "Name", nillable=False, length=120),
        Field("AccountId", "reference", "Account ID", reference_to=("Account",), length=18),
        Field("Amount", "currency", "Amount"),
        Field("StageName", "picklist", "Stage", nillable=False, picklist=tuple(_STAGE_NAMES.values())),
        Field("Probability", "percent", "Probability (%)"),
        Field("CloseDate", "date", "Close Date", nillable=False),
        Field("IsClosed", "boolean", "Closed", nillable=False), Field("IsWon", "boolean", "Won", nillable=False),
        Field("Type", "picklist", "Opportunity Type", picklist=("New Customer", "Existing Customer - Upgrade")),
        Field("LeadSource", "picklist", "Lead Source", picklist=tuple(sorted(set(_LEAD_SOURCE.values())))),
        Field("ContactId", "reference", "Contact ID", reference_to=("Contact",), length=18),
        Field("Product_Line__c", "picklist", "Product Line", custom=True,
              picklist=("Starter", "Professional", "Enterprise", "Add-on Seats", "Onboarding", "Annual Renewal")),
    ]

    def opp_row(d: int, t: int) -> dict[str, Any] | None:
        if not 0 <= d < w.deals.count(t):
            return None
        o = w.deal(d, t)
        close = o.close_ms if o.close_ms is not None else o.created_ms + 90 * DAY_MS
        p = w.person(o.contact_idx, t)
        row = {"Id": sf_id("006", d), "Name": o.name,
               "AccountId": sf_id("001", o.company_idx) if o.company_idx is not None else None,
               "Amount": float(o.amount) if o.amount is not None else None, "StageName": _STAGE_NAMES[o.stage],
               "Probability": _PROBABILITY[o.stage], "CloseDate": sf_date(close),
               "IsClosed": o.stage in ("closedwon", "closedlost"), "IsWon": o.stage == "closedwon",
               "Type": "Existing Customer - Upgrade" if o.deal_type == "existingbusiness" else "New Customer",
               "LeadSource": _LEAD_SOURCE.get(p.source, "Other"),
               "ContactId": sf_id("003", o.contact_idx) if converted(p.lifecycle_stage) else None,
               "Product_Line__c": o.name.rsplit(" - ", 1)[-1]}
        return _stamp(row, o.created_ms, o.modified_ms, owner_user_id(o.owner_id), o.archived_ms is not None)

    # -- OpportunityContactRole ------------------------------------------------------------------
    ocr_fields = [
        *_system_fields(owner=False),
        Field("OpportunityId", "reference", "Opportunity ID", reference_to=("Opportunity",), nillable=False,
              length=18),
        Field("ContactId", "reference", "Contact ID", reference_to=("Contact",), nillable=False, length=18),
        Field("Role", "picklist", "Role", picklist=("Decision Maker", "Economic Buyer", "Business User",
                                                     "Evaluator", "Influencer", "Other")),
        Field("IsPrimary", "boolean", "Primary", nillable=False),
    ]

    def ocr_row(d: int, t: int) -> dict[str, Any] | None:
        if not 0 <= d < w.deals.count(t):
            return None
        o = w.deal(d, t)
        p = w.person(o.contact_idx, t)
        if not converted(p.lifecycle_stage):
            return None
        roles = ocr_fields[-2].picklist
        row = {"Id": sf_id("00K", d), "OpportunityId": sf_id("006", d), "ContactId": sf_id("003", o.contact_idx),
               "Role": roles[d % len(roles)], "IsPrimary": True}
        return _stamp(row, max(o.created_ms, converted_ms(p)), max(o.modified_ms, p.modified_ms), None,
                      o.archived_ms is not None or p.archived_ms is not None)

    def ocr_scan(t: int, since: int | None) -> Scan:
        found = people_digest(t, since is None)

        def stamp(d: int) -> Stamp:
            if not 0 <= d < w.deals.count(t):
                return None
            c = w.contact_of_deal(d, t)
            if found is not None:
                flags, modified = int(found[0][c]), int(found[1][c])
            else:
                p = w.person(c, t)
                flags, modified = person_flags(p), p.modified_ms
            if not flags & is_contact:
                return None
            return (w.is_archived(w.deals, d, t) or bool(flags & is_archived),
                    max(w.modified_ms(w.deals, d, t), modified))
        return _scan_by_stamp(ocr_indexes(t, since), stamp)

    def ocr_indexes(t: int, since: int | None) -> Iterable[int]:
        if since is None:
            return range(w.deals.count(t))
        found = set(w.changed_since(w.deals, since, t))
        found.update(p // 4 for p in w.changed_since(w.people, since, t))
        n = w.deals.count(t)
        return sorted(d for d in found if d < n)

    # -- User ------------------------------------------------------------------------------------
    user_fields = [
        *_system_fields(owner=False),
        Field("Username", "string", "Username", nillable=False, length=80),
        Field("FirstName", "string", "First Name", length=40), Field("LastName", "string", "Last Name",
                                                                     nillable=False, length=80),
        Field("Name", "string", "Full Name", length=121), Field("Email", "email", "Email", nillable=False,
                                                                length=128),
        Field("Alias", "string", "Alias", nillable=False, length=8),
        Field("IsActive", "boolean", "Active", nillable=False),
        Field("TimeZoneSidKey", "picklist", "Time Zone", nillable=False, picklist=("America/Los_Angeles",)),
    ]
    epoch = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1000)

    def user_row(u: int, t: int) -> dict[str, Any] | None:
        if not 0 <= u < len(OWNERS):
            return None
        first = OWNER_FIRST[u]
        email = f"{first.lower()}@factoryline.example"
        row = {"Id": sf_id("005", u), "Username": email, "FirstName": first, "LastName": "Rep",
               "Name": f"{first} Rep", "Email": email, "Alias": first[:4].lower() + "rep"[: 4 - min(4, len(first))],
               "IsActive": True, "TimeZoneSidKey": "America/Los_Angeles"}
        return _stamp(row, epoch, epoch, None, False)

    def user_indexes(t: int, since: int | None) -> Iterable[int]:
        return range(len(OWNERS)) if since is None or since <= epoch else ()

    # -- Campaign / CampaignMember / Task / Event (journeys) -------------------------------------
    campaign_fields = [
        *_system_fields(),
        Field("Name", "string", "Name", nillable=False, length=80),
        Field("Type", "picklist", "Type", picklist=tuple(sorted(set(_CAMPAIGN_TYPES.values())))),
        Field("Status", "picklist", "Status", picklist=("Planned", "In Progress", "Completed", "Aborted")),
        Field("StartDate", "date", "Start Date"), Field("EndDate", "date", "End Date"),
        Field("BudgetedCost", "currency", "Budgeted Cost in Campaign"),
        Field("ActualCost", "currency", "Actual Cost in Campaign"),
        Field("IsActive", "boolean", "Active", nillable=False),
        Field("Channel__c", "picklist", "Channel", custom=True,
              picklist=("email", "web", "social", "paid", "event")),
    ]

    def sf_campaign(c: int) -> Any:
        if not jr.available or not 0 <= c < jr.j.campaign_count():
            return None
        camp = jr.campaign(c)
        return camp if camp.system == "salesforce" else None

    def campaign_row(c: int, t: int) -> dict[str, Any] | None:
        camp = sf_campaign(c)
        if camp is None or camp.created_ms > tick_ms(t):
            return None
        status = _campaign_status(str(camp.status))
        row = {"Id": sf_id("701", c), "Name": camp.name, "Type": _CAMPAIGN_TYPES.get(camp.kind, "Other"),
               "Status": status, "StartDate": sf_date(camp.start_ms) if camp.start_ms is not None else None,
               "EndDate": sf_date(camp.end_ms) if camp.end_ms is not None else None,
               "BudgetedCost": camp.budget / 100 if camp.budget is not None else None,
               "ActualCost": camp.actual_cost / 100 if camp.actual_cost is not None else None,
               "IsActive": status == "In Progress", "Channel__c": camp.channel}
        owner = owner_user_id(OWNERS[c % len(OWNERS)])
        return _stamp(row, camp.created_ms, camp.created_ms, owner, False)

    def campaign_indexes(t: int, since: int | None) -> Iterable[int]:
        if not jr.available:
            return ()
        return range(jr.j.campaign_count())

    def people_indexes(t: int, since: int | None) -> Iterator[int]:
        if since is None:
            yield from range(w.people.count(t))
        else:
            yield from sorted(set(jr.j.people_touched_since(since, t)))

    def who_id(p: int, t: int) -> str | None:
        person = jr.person(p, t)
        if converted(person.lifecycle_stage):
            return sf_id("003", p)
        return sf_id("00Q", p) if lead_ms(person) is not None else None

    member_fields = [
        *_system_fields(owner=False),
        Field("CampaignId", "reference", "Campaign ID", reference_to=("Campaign",), nillable=False, length=18),
        Field("LeadId", "reference", "Lead ID", reference_to=("Lead",), length=18),
        Field("ContactId", "reference", "Contact ID", reference_to=("Contact",), length=18),
        Field("Status", "picklist", "Status", picklist=("Sent", "Responded")),
        Field("HasResponded", "boolean", "Responded", nillable=False),
        Field("FirstRespondedDate", "date", "First Responded Date"),
        Field("Email", "email", "Email", length=80),
    ]

    def member_touches(p: int, c: int, t: int) -> list[Ev]:
        return [x for x in jr.events(p, t) if x[_CAMPAIGN] == c]

    def member_row(idx: int, t: int) -> dict[str, Any] | None:
        p, c = divmod(idx, CHILD_STRIDE)
        if not jr.available or not 0 <= p < w.people.count(t) or sf_campaign(c) is None:
            return None
        touches = member_touches(p, c, t)
        if not touches:
            return None
        responded = [x for x in touches if x[_KIND] not in ("email_send", "email_delivered", "email_bounce")]
        person = jr.person(p, t)
        if lead_ms(person) is None:  # a campaign member is a lead or a contact
            return None
        row = {"Id": sf_id("00v", idx), "CampaignId": sf_id("701", c), "LeadId": sf_id("00Q", p),
               "ContactId": sf_id("003", p) if converted(person.lifecycle_stage) else None,
               "Status": "Responded" if responded else "Sent", "HasResponded": bool(responded),
               "FirstRespondedDate": sf_date(responded[0][_AT]) if responded else None,
               "Email": clean_email(person.email)}
        return _stamp(row, touches[0][_AT], touches[-1][_AT], None, False)

    def member_indexes(t: int, since: int | None) -> Iterator[int]:
        if not jr.available:
            return
        for p in people_indexes(t, since):
            camps = sorted({x[_CAMPAIGN] for x in jr.events(p, t) if x[_CAMPAIGN] is not None})
            for c in camps:
                if sf_campaign(c) is not None:
                    yield p * CHILD_STRIDE + c

    def activity_indexes(kind: str) -> Callable[[int, int | None], Iterator[int]]:
        def indexes(t: int, since: int | None) -> Iterator[int]:
            if not jr.available:
                return
            for p in people_indexes(t, since):
                for seq, x in enumerate(jr.events(p, t)):
                    if x[_KIND] == kind and x[_SYSTEM] == "salesforce":
                        yield p * CHILD_STRIDE + seq
        return indexes

    def touch_of(idx: int, t: int, kind: str) -> Ev | None:
        p, seq = divmod(idx, CHILD_STRIDE)
        if not jr.available or not 0 <= p < w.people.count(t):
            return None
        evs = jr.events(p, t)
        if seq < len(evs):
            x = evs[seq]
            return x if x[_KIND] == kind and x[_SYSTEM] == "salesforce" else None
        return None

    # Journeys' touches dominate a scan of CampaignMember, Task or Event. A full scan walks only the
    # people who can have such records (a Task or an Event comes from a sales touch: only people who
    # reached salesqualifiedlead have one, see sandbox.journeys; a campaign member is a lead or a
    # contact), builds each walked person once (the people digest comes from the same pass when it
    # is not built yet), reads its journey as plain event tuples (no Touch objects), and keeps what
    # it found for the three objects at its tick: a first run reads them in a row, and the people a
    # Task/Event walk visited are not visited again for CampaignMember
    walk_lock = threading.Lock()
    walked: dict[int, _Walk] = {}
    sf_camps: list[bytearray] = []  # [flag per campaign index: a Salesforce campaign], built once

    def sf_campaign_flags() -> bytearray:
        if not sf_camps:
            sf_camps.append(bytearray(sf_campaign(c) is not None for c in range(jr.j.campaign_count())))
        return sf_camps[0]

    def walk_touches(t: int, since: int | None, group: str) -> dict[str, Scan]:
        """The stamps of CampaignMember ("member") or of Task ("call") and Event ("meeting")
        (``group`` "activities"), each in the order of its ``indexes``."""
        if since is not None and since > tick_ms(0) - DAY_MS:
            # a window after the journeys' base touches: O(changed) people, unless this tick's full
            # walk is already at hand (a superset: the query's own SystemModstamp bounds filter it)
            with walk_lock:
                found = walked.get(t)
            if found is not None and found.covers(group):
                return found.scans()
            return walk(t, people_indexes(t, since), None)
        # a full scan, or a lower bound among the base touches (which would build most journeys
        # twice to find the people touched since): the full walk, filtered by the query's bounds
        with walk_lock:
            found = walked.get(t)
            if found is None:
                for key in [k for k in walked if k != t]:
                    del walked[key]
                found = walked[t] = _Walk()
            if not found.covers(group):
                full_walk(t, found, group == "member")
            return found.scans()

    def full_walk(t: int, into: _Walk, members: bool) -> None:
        """Walk the sales people at tick ``t`` if not walked yet, and with ``members`` the other
        leads (each walked person gives its Tasks and Events if in sales, its members if a lead)."""
        if not jr.available:
            into.sales = into.rest = True
            return
        sf = sf_campaign_flags()
        events = jr.of_person
        calls, meetings = (array("q"), array("q")), (array("q"), array("q"))
        m_idx, m_modified = array("q"), array("q")
        acts = not into.sales  # Tasks and Events: the sales people (all of them, in one walk)
        want = (is_lead if members else 0) | (0 if into.sales else is_sales)
        skip = is_sales if into.sales else 0

        def visit(p: Any, f: int) -> None:
            evs = events(p, t)
            base = p.idx * CHILD_STRIDE
            if acts and f & is_sales:
                for n, ev in enumerate(evs):
                    if ev[3] == "salesforce":
                        kind = ev[1]
                        if kind == "call":
                            calls[0].append(base + n)
                            calls[1].append(ev[0])
                        elif kind == "meeting":
                            meetings[0].append(base + n)
                            meetings[1].append(ev[0])
            if f & is_lead:
                last: dict[int, int] = {}  # campaign -> its last touch (the member's SystemModstamp)
                for ev in evs:
                    c = ev[2]
                    if c is not None and sf[c]:
                        last[c] = ev[0]
                for c in sorted(last):
                    m_idx.append(base + c)
                    m_modified.append(last[c])

        if not build_digest_with(t, want, skip, visit):
            found = people_digest(t, True)
            assert found is not None
            flags = found[0]
            mask = (flags & want) != 0
            if skip:
                mask &= (flags & skip) == 0
            person = w.person
            for i, f in zip(_ints(np.flatnonzero(mask)), _ints(flags[mask]), strict=True):
                visit(person(i, t), f)
        if acts:
            into.call = _scan_arrays(calls[0], bytearray(len(calls[0])), calls[1])
            into.meeting = _scan_arrays(meetings[0], bytearray(len(meetings[0])), meetings[1])
            into.sales = True
        into.add_members(_scan_arrays(m_idx, bytearray(len(m_idx)), m_modified))
        if members:
            into.rest = True

    def walk(t: int, people: Iterable[int], group: str | None) -> dict[str, Scan]:
        """Stamps from the touches of ``people`` (ascending): those of ``group``, or of all three."""
        out = {k: (array("q"), bytearray(), array("q")) for k in ("member", "call", "meeting")}
        if not jr.available:
            return {k: _scan_arrays(*v) for k, v in out.items()}
        members, activities = group in (None, "member"), group in (None, "activities")
        found = people_digest(t, False)
        m_idx, m_deleted, m_modified = out["member"]
        for p in people:
            last: dict[int, int] = {}  # campaign -> its last touch (the member's SystemModstamp)
            for seq, (at, kind, c, system, _) in enumerate(jr.events(p, t)):
                if c is not None:
                    last[c] = at
                if activities and system == "salesforce" and kind in ("call", "meeting"):
                    a_idx, a_deleted, a_modified = out[kind]
                    a_idx.append(p * CHILD_STRIDE + seq)
                    a_deleted.append(0)
                    a_modified.append(at)
            if not members:
                continue
            camps = sorted(c for c in last if sf_campaign(c) is not None)
            if not camps:
                continue
            lead = (bool(found[0][p] & is_lead) if found is not None and p < len(found[0])
                    else lead_ms(jr.person(p, t)) is not None)
            if lead:
                for c in camps:
                    m_idx.append(p * CHILD_STRIDE + c)
                    m_deleted.append(0)
                    m_modified.append(last[c])
        return {k: _scan_arrays(*v) for k, v in out.items()}

    def touch_scanner(kind: str) -> Callable[[int, int | None], Scan]:
        group = "member" if kind == "member" else "activities"
        return lambda t, since: walk_touches(t, since, group)[kind]

    activity_common = [
        Field("WhoId", "reference", "Name ID", reference_to=("Contact", "Lead"), length=18),
        Field("WhatId", "reference", "Related To ID", reference_to=("Account", "Campaign", "Opportunity"),
              length=18),
        Field("Subject", "string", "Subject", length=255), Field("ActivityDate", "date", "Due Date Only"),
        Field("Description", "textarea", "Description", length=32000),
    ]
    task_fields = [
        *_system_fields(), *activity_common,
        Field("Status", "picklist", "Status", nillable=False, picklist=("Not Started", "In Progress", "Completed")),
        Field("Priority", "picklist", "Priority", nillable=False, picklist=("High", "Normal", "Low")),
        Field("TaskSubtype", "picklist", "Task Subtype", picklist=("Task", "Email", "Call")),
        Field("CallType", "picklist", "Call Type", picklist=("Internal", "Inbound", "Outbound")),
        Field("CallDurationInSeconds", "int", "Call Duration"),
        Field("IsClosed", "boolean", "Closed", nillable=False),
    ]
    event_fields = [
        *_system_fields(), *activity_common,
        Field("ActivityDateTime", "datetime", "Due Date Time"), Field("StartDateTime", "datetime", "Start"),
        Field("EndDateTime", "datetime", "End"), Field("DurationInMinutes", "int", "Duration"),
        Field("Location", "string", "Location", length=255),
    ]

    def activity_base(idx: int, t: int, kind: str, prefix: str) -> tuple[int, dict[str, Any]] | None:
        x = touch_of(idx, t, kind)
        if x is None:
            return None
        p = idx // CHILD_STRIDE
        camp = x[_CAMPAIGN]
        what = sf_id("701", camp) if camp is not None and sf_campaign(camp) else None
        deals = w.deals_of_person(p, t)
        if what is None and deals:
            what = sf_id("006", deals[0])
        return x[_AT], {"Id": sf_id(prefix, idx), "WhoId": who_id(p, t), "WhatId": what,
                        "ActivityDate": sf_date(x[_AT]), "Description": x[_URL]}

    def task_row(idx: int, t: int) -> dict[str, Any] | None:
        found = activity_base(idx, t, "call", "00T")
        if found is None:
            return None
        at, row = found
        row.update({"Subject": "Call", "Status": "Completed", "Priority": "Normal", "TaskSubtype": "Call",
                    "CallType": "Outbound", "CallDurationInSeconds": 60 + (at // 1000) % 1740,
                    "IsClosed": True})
        owner = owner_user_id(jr.person(idx // CHILD_STRIDE, t).owner_id)
        return _stamp(row, at, at, owner, False)

    def event_row(idx: int, t: int) -> dict[str, Any] | None:
        found = activity_base(idx, t, "meeting", "00U")
        if found is None:
            return None
        at, row = found
        minutes = 30 if (at // 1000) % 2 else 60
        row.update({"Subject": "Meeting", "ActivityDateTime": at, "StartDateTime": at,
                    "EndDateTime": at + minutes * 60_000, "DurationInMinutes": minutes,
                    "Location": "Video call" if (at // 1000) % 3 else "On site"})
        owner = owner_user_id(jr.person(idx // CHILD_STRIDE, t).owner_id)
        return _stamp(row, at, at, owner, False)

    objs = [
        SObject("Account", "Account", "Accounts", "001", account_fields, account_row, world_indexes(w.companies),
                scanner=space_scanner(w.companies)),
        SObject("Campaign", "Campaign", "Campaigns", "701", campaign_fields, campaign_row, campaign_indexes),
        SObject("CampaignMember", "Campaign Member", "Campaign Members", "00v", member_fields, member_row,
                member_indexes, scanner=touch_scanner("member")),
        SObject("Contact", "Contact", "Contacts", "003", contact_fields, contact_row, world_indexes(w.people),
                scanner=person_scanner(is_contact)),
        SObject("Event", "Event", "Events", "00U", event_fields, event_row, activity_indexes("meeting"),
                scanner=touch_scanner("meeting")),
        SObject("Lead", "Lead", "Leads", "00Q", lead_fields, lead_row, world_indexes(w.people),
                scanner=person_scanner(is_lead)),
        SObject("Opportunity", "Opportunity", "Opportunities", "006", opp_fields, opp_row, world_indexes(w.deals),
                scanner=space_scanner(w.deals)),
        SObject("OpportunityContactRole", "Opportunity Contact Role", "Opportunity Contact Roles", "00K",
                ocr_fields, ocr_row, ocr_indexes, scanner=ocr_scan),
        SObject("Task", "Task", "Tasks", "00T", task_fields, task_row, activity_indexes("call"),
                scanner=touch_scanner("call")),
        SObject("User", "User", "Users", "005", user_fields, user_row, user_indexes),
    ]
    return {o.name: o for o in objs}
