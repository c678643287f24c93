"""HubSpot marketing endpoints of the sandbox emulator, over the journeys' ``hubspot`` touches.

* ``GET /email/public/v1/events`` (legacy v1): one event per HubSpot email touch
  (``email_send`` SENT, ``email_delivered`` DELIVERED, ``email_open`` OPEN, ``email_click`` CLICK
  with ``url``, ``email_bounce`` BOUNCE, ``unsubscribe`` UNSUBSCRIBE); ``startTimestamp`` /
  ``endTimestamp`` (epoch ms, both inclusive), ``eventType``, ``limit`` (<= 1000, default 100) and
  the opaque ``offset`` of the previous page. Events are ordered by contact, then time (HubSpot
  promises no order); a ``startTimestamp`` after tick 0 looks only at the people the ticks since
  then touched (O(changed)). Events of archived contacts stay (HubSpot keeps email history);
  ``recipient`` is the contact's current address, trimmed and lower-cased.
* ``GET /marketing/v3/forms/``: the site's forms (``id`` = ``guid``); ``GET
  /form-integrations/v1/submissions/forms/{guid}``: the ``form_submission`` touches whose page is
  that form, ``limit`` <= 50, ``after`` cursor, ordered by contact then time.
* ``GET /marketing/v3/emails``: one marketing email per HubSpot email campaign (slot 0); its
  ``allEmailCampaignIds`` hold the ``emailCampaignId`` of its events. Email touches outside any
  campaign carry ``emailCampaignId: null``.
* Merged contacts: 2% of contacts are merge survivors whose ``hs_merged_object_ids`` lists one or
  two merged-away ids (``MERGED_BASE + 2 * i + k``, never a live contact id). Those ids are absent
  from lists and search; ``GET /crm/v3/objects/contacts/{merged id}`` answers 301 with
  ``Location`` of the survivor (404 when the survivor is archived); batch read and associations
  answer them as missing (404 semantics).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sandbox.journeys import Journeys, Touch
from sandbox.protocol import Request, Response
from sandbox.world import World, format_ms

__all__ = ["MERGED_BASE", "HubSpotError", "Marketing", "merged_ids", "merged_survivor"]

#: merged-away contact ids are MERGED_BASE + 2 * survivor index + k (k < number merged)
MERGED_BASE = 1_500_000_000
MERGED_PCT = 2
_S_MERGED = 9101
_M64 = (1 << 64) - 1
PORTAL_ID = 62515
APP_ID = 113  # HubSpot's app id of batch marketing emails
EMAIL_ID_BASE = 100_000_000
EMAIL_CAMPAIGN_ID_BASE = 200_000_000
SITE = "https://www.factoryline.example"
_EVENT_TYPES = {"email_send": "SENT", "email_delivered": "DELIVERED", "email_open": "OPEN",
                "email_click": "CLICK", "email_bounce": "BOUNCE", "unsubscribe": "UNSUBSCRIBE"}
#: every type the v1 API accepts as ``eventType`` (the others never occur in the sandbox)
_KNOWN_TYPES = frozenset({*_EVENT_TYPES.values(), "PROCESSED", "DROPPED", "DEFERRED", "SPAMREPORT", "FORWARD",
                          "PRINT", "STATUSCHANGE", "SUPPRESSED"})
#: form page path -> name
FORMS = {"/newsletter": "Newsletter sign-up", "/ebook/marketing-factory": "Ebook: The Marketing Factory",
         "/demo": "Request a demo", "/contact-sales": "Contact sales", "/webinar/register": "Webinar registration",
         "/trial": "Start a trial", "/review": "Write a review"}
_SEQ_BITS = 16
_FORM_CREATED = "2024-01-15T09:00:00.000Z"


class HubSpotError(Exception):
    """An answer in HubSpot's error shape (status, message, category, extra fields)."""

    def __init__(self, status: int, message: str, category: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.extra = extra


def merged_ids(seed: int, idx: int) -> list[int]:
    """The merged-away contact ids of contact index ``idx`` (empty for 98% of contacts)."""
    h = hash((seed, _S_MERGED, idx)) & _M64
    if h % 100 >= MERGED_PCT:
        return []
    return [MERGED_BASE + 2 * idx + k for k in range(1 + (h >> 8) % 2)]


def merged_survivor(seed: int, contact_id: int) -> int | None:
    """The index of the contact a merged-away id was merged into, or ``None``."""
    v = contact_id - MERGED_BASE
    if v < 0:
        return None
    idx = v // 2
    return idx if contact_id in merged_ids(seed, idx) else None


def form_guid(path: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, SITE + path))


_FORM_BY_GUID = {form_guid(p): p for p in FORMS}


def _form_path(url: str | None) -> str | None:
    return None if url is None else urlsplit(url).path


def _int_arg(request: Request, name: str, default: int) -> int:
    raw = request.arg(name)
    if raw in (None, ""):
        return default
    try:
        return int(str(raw))
    except ValueError:
        raise HubSpotError(400, f"Invalid value for {name}: {raw!r}", "VALIDATION_ERROR") from None


@dataclass(frozen=True, slots=True)
class _Cursor:
    idx: int
    seq: int

    def encode(self) -> str:
        return str((self.idx << _SEQ_BITS) | self.seq)

    @staticmethod
    def decode(raw: str | None) -> _Cursor:
        if not raw:
            return _Cursor(0, 0)
        try:
            v = int(raw)
        except ValueError:
            raise HubSpotError(400, f"Invalid offset {raw!r}", "VALIDATION_ERROR") from None
        return _Cursor(v >> _SEQ_BITS, v & ((1 << _SEQ_BITS) - 1))


class Marketing:
    """The marketing routes of :class:`~connectors.hubspot.emulator.HubSpotEmulator`."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.journeys = Journeys(world)

    # -- shared scan ---------------------------------------------------------------------------------

    def _people(self, since_ms: int | None, start_idx: int, tick: int) -> Any:
        if since_ms is None:
            return range(start_idx, self.world.people.count(tick))
        return (i for i in self.journeys.people_touched_since(since_ms, tick) if i >= start_idx)

    def _scan(self, cursor: _Cursor, since_ms: int | None, limit: int, tick: int, keep: Any
              ) -> tuple[list[tuple[Touch, list[Touch]]], _Cursor | None]:
        """Up to ``limit`` touches passing ``keep`` from ``cursor`` on (contact order, then seq), and
        the cursor of the next one (``None`` at the end)."""
        out: list[tuple[Touch, list[Touch]]] = []
        for idx in self._people(since_ms, cursor.idx, tick):
            touches = self.journeys.touches(idx, tick)
            first = cursor.seq if idx == cursor.idx else 0
            for x in touches[first:]:
                if keep(x):
                    if len(out) == limit:
                        return out, _Cursor(idx, x.seq)
                    out.append((x, touches))
        return out, None

    # -- email events (v1) ---------------------------------------------------------------------------

    def email_events(self, request: Request) -> Response:
        tick = self.world.tick
        limit = _int_arg(request, "limit", 100)
        if not 1 <= limit <= 1000:
            raise HubSpotError(400, f"limit must be between 1 and 1000, got {limit}", "VALIDATION_ERROR")
        start = request.arg("startTimestamp")
        end = request.arg("endTimestamp")
        since = _int_arg(request, "startTimestamp", 0) if start else None
        until = _int_arg(request, "endTimestamp", 0) if end else None
        wanted = request.arg("eventType")
        if wanted is not None and wanted.upper() not in _KNOWN_TYPES:
            raise HubSpotError(400, f"Unknown eventType {wanted}", "VALIDATION_ERROR")
        wanted = wanted.upper() if wanted else None

        def keep(x: Touch) -> bool:
            kind = _EVENT_TYPES.get(x.kind)
            return (kind is not None and x.system == "hubspot" and (wanted is None or kind == wanted)
                    and (since is None or x.at_ms >= since) and (until is None or x.at_ms <= until))

        found, nxt = self._scan(_Cursor.decode(request.arg("offset")), since, limit, tick, keep)
        emails: dict[int, str | None] = {}
        events = []
        for x, touches in found:
            if x.person_idx not in emails:
                email = self.world.person(x.person_idx, tick).email
                emails[x.person_idx] = email.strip().lower() if email else None
            events.append(self._event(x, touches, emails[x.person_idx]))
        body: dict[str, Any] = {"events": events, "hasMore": nxt is not None,
                                "offset": nxt.encode() if nxt is not None else ""}
        return Response(200, body, records=len(events))

    @staticmethod
    def event_id(x: Touch) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_OID, f"hubspot-email-event:{x.person_idx}:{x.seq}"))

    def _event(self, x: Touch, touches: list[Touch], recipient: str | None) -> dict[str, Any]:
        sent = x
        if x.kind != "email_send":
            prior = [s for s in touches[: x.seq] if s.kind == "email_send" and s.system == "hubspot"]
            same = [s for s in prior if s.campaign_idx == x.campaign_idx]
            sent = (same or prior or [x])[-1]
        ev: dict[str, Any] = {
            "id": self.event_id(x), "created": x.at_ms, "type": _EVENT_TYPES[x.kind], "recipient": recipient,
            "portalId": PORTAL_ID, "appId": APP_ID, "appName": "BatchEmail",
            "emailCampaignId": None if x.campaign_idx is None else EMAIL_CAMPAIGN_ID_BASE + x.campaign_idx,
            "sentBy": {"id": self.event_id(sent), "created": sent.at_ms},
        }
        if x.kind == "email_click":
            ev["url"] = x.url
        elif x.kind == "email_bounce":
            ev["category"] = "HARD_BOUNCE"
        elif x.kind == "unsubscribe":
            ev["subscriptions"] = [{"id": 1, "status": "UNSUBSCRIBED"}]
        return ev

    # -- forms ---------------------------------------------------------------------------------------

    def forms(self, request: Request) -> Response:
        results = [{"id": form_guid(path), "guid": form_guid(path), "name": name, "formType": "hubspot",
                    "createdAt": _FORM_CREATED, "updatedAt": _FORM_CREATED, "archived": False,
                    "configuration": {"language": "en", "cloneable": True, "editable": True},
                    "fieldGroups": [{"groupType": "default_group", "richTextType": "text", "fields": [
                        {"objectTypeId": "0-1", "name": f, "label": f.title(), "required": f == "email",
                         "hidden": False, "fieldType": "email" if f == "email" else "single_line_text"}
                        for f in ("email", "firstname", "lastname")]}]}
                   for path, name in FORMS.items()]
        return Response(200, {"results": results}, records=len(results))

    def form_submissions(self, request: Request, guid: str) -> Response:
        path = _FORM_BY_GUID.get(guid)
        if path is None:
            raise HubSpotError(404, f"Form {guid} not found", "OBJECT_NOT_FOUND")
        limit = _int_arg(request, "limit", 20)
        if not 1 <= limit <= 50:
            raise HubSpotError(400, f"limit must be between 1 and 50, got {limit}", "VALIDATION_ERROR")
        tick = self.world.tick

        def keep(x: Touch) -> bool:
            return x.kind == "form_submission" and x.system == "hubspot" and _form_path(x.url) == path

        found, nxt = self._scan(_Cursor.decode(request.arg("after")), None, limit, tick, keep)
        results = []
        for x, _ in found:
            p = self.world.person(x.person_idx, tick)
            values = [{"name": "firstname", "value": p.first_name}, {"name": "lastname", "value": p.last_name}]
            if p.email:
                values.insert(0, {"name": "email", "value": p.email.strip()})
            results.append({"submittedAt": x.at_ms, "values": values, "pageUrl": x.url,
                            "conversionId": str(uuid.uuid5(uuid.NAMESPACE_OID,
                                                           f"hubspot-form:{self.world.seed}:{x.person_idx}:{x.seq}"))})
        body: dict[str, Any] = {"results": results}
        if nxt is not None:
            after = nxt.encode()
            body["paging"] = {"next": {"after": after, "link": f"https://api.hubapi.com/form-integrations/v1/"
                                                              f"submissions/forms/{guid}?after={after}"}}
        return Response(200, body, records=len(results))

    # -- marketing emails (v3) -----------------------------------------------------------------------

    def email_campaigns(self) -> list[int]:
        """Indexes of the journeys' HubSpot email campaigns (one marketing email each)."""
        return [c for c in range(self.journeys.campaign_count()) if c % 10 == 0]

    def marketing_emails(self, request: Request) -> Response:
        limit = _int_arg(request, "limit", 10)
        if not 1 <= limit <= 300:
            raise HubSpotError(400, f"limit must be between 1 and 300, got {limit}", "VALIDATION_ERROR")
        start = _int_arg(request, "after", 0)
        campaigns = self.email_campaigns()
        page = campaigns[start: start + limit]
        results = []
        for c in page:
            camp = self.journeys.campaign(c)
            state = {"planned": "SCHEDULED", "in_progress": "PUBLISHED", "completed": "PUBLISHED",
                     "aborted": "PUBLISHED"}[camp.status]
            results.append({
                "id": str(EMAIL_ID_BASE + c), "name": camp.name, "subject": f"{camp.name}: news from Factoryline",
                "type": "BATCH_EMAIL", "subcategory": "batch", "state": state,
                "isPublished": state == "PUBLISHED", "campaign": str(uuid.uuid5(uuid.NAMESPACE_OID,
                                                                                f"hubspot-campaign:{c}")),
                "campaignName": camp.name, "allEmailCampaignIds": [str(EMAIL_CAMPAIGN_ID_BASE + c)],
                "createdAt": format_ms(camp.created_ms), "updatedAt": format_ms(max(camp.created_ms, camp.start_ms)),
                "publishDate": format_ms(camp.start_ms), "archived": False, "language": "en",
            })
        body: dict[str, Any] = {"total": len(campaigns), "results": results}
        if start + limit < len(campaigns):
            after = str(start + limit)
            body["paging"] = {"next": {"after": after,
                                       "link": f"https://api.hubapi.com/marketing/v3/emails?after={after}"}}
        return Response(200, body, records=len(results))
