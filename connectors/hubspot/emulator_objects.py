"""Line items, engagements and deal pipelines of the HubSpot emulator, derived from the world.

Derived objects hang off a world space with a fixed fan-out: object index ``i`` belongs to parent
index ``i // fanout`` and shares its clock (created, last modified and archived with it), so every
record is still a pure function of ``(seed, index, tick)`` and "modified since" stays O(changed).

=============  ========  =======  ===============================================================
object         parent    fan-out  associations
=============  ========  =======  ===============================================================
line_items     deals     2        deals
calls          deals     2        contacts, companies, deals (the deal's contact and company)
emails         deals     1        contacts, companies, deals
meetings       deals     1        contacts, companies, deals
tasks          deals     1        contacts, companies, deals
notes          companies 1        companies, contacts (the company's first contact)
=============  ========  =======  ===============================================================

Deals with index ``d % 5 == 4`` sit in a custom pipeline (:data:`CUSTOM_PIPELINE`) whose stage
ids are numeric, as HubSpot gives custom stages; its stage metadata (``isClosed``,
``probability``) is the only way to know which of them are closed or won.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sandbox.world import DEAL_STAGES, OWNERS, World, format_ms

__all__ = ["CUSTOM_PIPELINE", "DERIVED", "ENGAGEMENT_TYPES", "View", "custom_stage", "derived_props", "pipelines"]

_M64 = (1 << 64) - 1
_EPOCH_ISO = "2020-01-01T00:00:00.000Z"
DAY_MS = 86_400_000

ENGAGEMENT_TYPES = ("calls", "emails", "meetings", "notes", "tasks")

#: name -> (parent space, fan-out)
DERIVED: dict[str, tuple[str, int]] = {
    "line_items": ("deals", 2), "calls": ("deals", 2), "emails": ("deals", 1), "meetings": ("deals", 1),
    "tasks": ("deals", 1), "notes": ("companies", 1),
}

#: the custom pipeline: id, label, and its stages (world stage -> numeric custom stage id)
CUSTOM_PIPELINE = "8675309"
_CUSTOM_STAGE = {sid: str(90_000_001 + n) for n, (sid, *_rest) in enumerate(DEAL_STAGES)}
_CUSTOM_LABEL = {
    "appointmentscheduled": "Discovery", "qualifiedtobuy": "Technical fit", "presentationscheduled": "Pilot",
    "decisionmakerboughtin": "Business case", "contractsent": "Procurement", "closedwon": "Signed",
    "closedlost": "Lost to competitor",
}


def custom_stage(world_stage: str) -> str:
    return _CUSTOM_STAGE[world_stage]


def in_custom_pipeline(d: int) -> bool:
    return d % 5 == 4


def pipelines() -> list[dict[str, Any]]:
    """``GET /crm/v3/pipelines/deals`` results: the default pipeline and the custom one."""
    def stage(sid: str, label: str, n: int, prob: float, closed: bool) -> dict[str, Any]:
        return {"id": sid, "label": label, "displayOrder": n,
                "metadata": {"isClosed": "true" if closed else "false", "probability": f"{prob:g}"},
                "createdAt": _EPOCH_ISO, "updatedAt": _EPOCH_ISO, "archived": False,
                "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}

    default = [stage(sid, label, n, prob, closed) for n, (sid, label, prob, closed) in enumerate(DEAL_STAGES)]
    custom = [stage(_CUSTOM_STAGE[sid], _CUSTOM_LABEL[sid], n, prob, closed)
              for n, (sid, _label, prob, closed) in enumerate(DEAL_STAGES)]
    return [{"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "stages": default,
             "createdAt": _EPOCH_ISO, "updatedAt": _EPOCH_ISO, "archived": False},
            {"id": CUSTOM_PIPELINE, "label": "Enterprise Pipeline", "displayOrder": 1, "stages": custom,
             "createdAt": _EPOCH_ISO, "updatedAt": _EPOCH_ISO, "archived": False}]


@dataclass(frozen=True)
class View:
    """A world space seen through a fan-out: what the emulator asks of an object's clock."""

    world: World
    space: Any
    fanout: int = 1

    def count(self, t: int) -> int:
        return int(self.space.count(t)) * self.fanout

    def is_archived(self, idx: int, t: int) -> bool:
        return self.world.is_archived(self.space, idx // self.fanout, t)

    def modified_ms(self, idx: int, t: int) -> int:
        return self.world.modified_ms(self.space, idx // self.fanout, t)

    def changed_since(self, since_ms: int, t: int, lo: int = 0, hi: int | None = None) -> Iterator[int]:
        f = self.fanout
        hi = self.count(t) if hi is None else min(hi, self.count(t))
        for p in self.world.changed_since(self.space, since_ms, t, lo // f, -(-hi // f)):
            for k in range(f):
                i = p * f + k
                if lo <= i < hi:
                    yield i

    def archived_indexes(self, t: int, start: int = 0) -> Iterator[int]:
        f = self.fanout
        for p in self.world.archived_indexes(self.space, t, start // f):
            for k in range(f):
                if p * f + k >= start:
                    yield p * f + k


def _h(seed: int, salt: int, i: int) -> int:
    x = (seed * 0x9E3779B97F4A7C15 + salt * 0xBF58476D1CE4E5B9 + i * 0x94D049BB133111EB) & _M64
    x ^= x >> 31
    x = (x * 0xD6E8FEB86659FD93) & _M64
    return x ^ (x >> 32)


#: (name, label, type, fieldType, group, hubspotDefined, options), as in emulator._PROPERTY_DEFS
_PropDef = tuple[str, str, str, str, str, bool, tuple[str, ...]]


def _common(group: str, created: str = "hs_createdate") -> tuple[_PropDef, ...]:
    return (("hs_object_id", "Record ID", "number", "number", group, True, ()),
            (created, "Create Date", "datetime", "date", group, True, ()),
            ("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", group, True, ()),
            ("hubspot_owner_id", "Owner", "enumeration", "select", group, True, tuple(str(o) for o in OWNERS)))


def _engagement(group: str, *own: _PropDef) -> tuple[_PropDef, ...]:
    return (*_common(group), ("hs_timestamp", "Activity date", "datetime", "date", group, True, ()), *own)


PROPERTY_DEFS: dict[str, tuple[_PropDef, ...]] = {
    "line_items": (
        *_common("lineiteminformation", "createdate"),
        ("name", "Name", "string", "text", "lineiteminformation", True, ()),
        ("quantity", "Quantity", "number", "number", "lineiteminformation", True, ()),
        ("price", "Unit price", "number", "number", "lineiteminformation", True, ()),
        ("amount", "Net price", "number", "number", "lineiteminformation", True, ()),
        ("hs_sku", "SKU", "string", "text", "lineiteminformation", True, ()),
        ("hs_product_id", "Product ID", "number", "number", "lineiteminformation", True, ()),
        ("recurringbillingfrequency", "Billing frequency", "enumeration", "select", "lineiteminformation", True,
         ("monthly", "annually")),
    ),
    "calls": _engagement(
        "call",
        ("hs_call_title", "Call Title", "string", "text", "call", True, ()),
        ("hs_call_body", "Call notes", "string", "html", "call", True, ()),
        ("hs_call_direction", "Call direction", "enumeration", "select", "call", True, ("INBOUND", "OUTBOUND")),
        ("hs_call_duration", "Call duration", "number", "number", "call", True, ()),
        ("hs_call_status", "Call status", "enumeration", "select", "call", True,
         ("COMPLETED", "NO_ANSWER", "BUSY", "FAILED")),
        ("hs_call_disposition", "Call outcome", "string", "text", "call", True, ()),
    ),
    "emails": _engagement(
        "email",
        ("hs_email_subject", "Email subject", "string", "text", "email", True, ()),
        ("hs_email_text", "Email body", "string", "text", "email", True, ()),
        ("hs_email_direction", "Email direction", "enumeration", "select", "email", True,
         ("EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL")),
        ("hs_email_status", "Email send status", "enumeration", "select", "email", True,
         ("SENT", "BOUNCED", "SCHEDULED")),
    ),
    "meetings": _engagement(
        "meeting",
        ("hs_meeting_title", "Meeting name", "string", "text", "meeting", True, ()),
        ("hs_meeting_body", "Meeting description", "string", "html", "meeting", True, ()),
        ("hs_meeting_start_time", "Start time", "datetime", "date", "meeting", True, ()),
        ("hs_meeting_end_time", "End time", "datetime", "date", "meeting", True, ()),
        ("hs_meeting_outcome", "Meeting outcome", "enumeration", "select", "meeting", True,
         ("SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED")),
    ),
    "notes": _engagement(
        "note",
        ("hs_note_body", "Note body", "string", "html", "note", True, ()),
    ),
    "tasks": _engagement(
        "task",
        ("hs_task_subject", "Task title", "string", "text", "task", True, ()),
        ("hs_task_body", "Task notes", "string", "html", "task", True, ()),
        ("hs_task_status", "Task status", "enumeration", "select", "task", True,
         ("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED")),
        ("hs_task_priority", "Priority", "enumeration", "select", "task", True, ("NONE", "LOW", "MEDIUM", "HIGH")),
        ("hs_task_type", "Task type", "enumeration", "select", "task", True, ("CALL", "EMAIL", "TODO")),
    ),
}

_PRODUCTS = (("Starter", 4900), ("Professional", 19900), ("Enterprise", 89900), ("Add-on Seats", 1500),
             ("Onboarding", 250000), ("Annual Renewal", 120000))
_CALL_TITLES = ("Discovery call", "Follow-up call", "Pricing call", "Check-in", "Demo follow-up")
_MEETING_TITLES = ("Product demo", "Kick-off", "Quarterly review", "Technical deep dive", "Contract review")
_EMAIL_SUBJECTS = ("Following up on our call", "Proposal attached", "Next steps", "Quick question",
                   "Your trial")
_TASK_SUBJECTS = ("Send proposal", "Call back", "Prepare demo", "Update the deal amount", "Book a meeting")


def derived_props(world: World, name: str, idx: int, tick: int
                  ) -> tuple[dict[str, str | None], int, int, int | None]:
    """(properties, created ms, modified ms, archived ms) of derived object ``name`` number ``idx``."""
    parent_space, fanout = DERIVED[name]
    p, k = divmod(idx, fanout)
    if parent_space == "deals":
        parent: Any = world.deal(p, tick)
    else:
        parent = world.company(p, tick)
    created, modified, archived = parent.created_ms, parent.modified_ms, parent.archived_ms
    h = _h(world.seed, 7000 + len(name) * 31 + ord(name[0]), idx)
    owner = str(parent.owner_id)
    base: dict[str, str | None] = {"hs_object_id": None, "hs_lastmodifieddate": format_ms(modified),
                                   "hubspot_owner_id": owner}
    if name == "line_items":
        product, price = _PRODUCTS[(h >> 4) % len(_PRODUCTS)]
        qty = 1 + h % 5
        base.update({"createdate": format_ms(created), "name": product, "quantity": str(qty),
                     "price": f"{price / 100:.2f}", "amount": f"{qty * price / 100:.2f}",
                     "hs_sku": f"FL-{product[:3].upper()}-{(h >> 8) % 100:02d}",
                     "hs_product_id": str(100_000 + (h >> 4) % len(_PRODUCTS)),
                     "recurringbillingfrequency": "annually" if (h >> 12) % 2 else "monthly"})
        return base, created, modified, archived
    # an engagement happened between its parent's creation and last edit (or a few weeks after creation)
    span = max(1, min(modified - created, 30 * DAY_MS))
    at = created + (h >> 16) % span
    base.update({"hs_createdate": format_ms(at), "hs_timestamp": format_ms(at)})
    pick = (h >> 8) % 5
    if name == "calls":
        base.update({"hs_call_title": _CALL_TITLES[pick], "hs_call_body": f"<p>{_CALL_TITLES[pick]} notes</p>",
                     "hs_call_direction": "OUTBOUND" if k == 0 else "INBOUND",
                     "hs_call_duration": str(60_000 + (h >> 24) % 1_800_000),
                     "hs_call_status": ("COMPLETED", "COMPLETED", "NO_ANSWER", "BUSY", "COMPLETED")[pick],
                     "hs_call_disposition": "f240bbac-87c9-4f6e-bf70-924b57d47db7"})
    elif name == "emails":
        base.update({"hs_email_subject": _EMAIL_SUBJECTS[pick], "hs_email_text": "Hi, ...",
                     "hs_email_direction": "EMAIL" if pick else "INCOMING_EMAIL", "hs_email_status": "SENT"})
    elif name == "meetings":
        base.update({"hs_meeting_title": _MEETING_TITLES[pick], "hs_meeting_body": None,
                     "hs_meeting_start_time": format_ms(at), "hs_meeting_end_time": format_ms(at + 3_600_000),
                     "hs_meeting_outcome": ("COMPLETED", "COMPLETED", "NO_SHOW", "RESCHEDULED", "SCHEDULED")[pick]})
    elif name == "notes":
        base.update({"hs_note_body": f"<p>Account note {idx}: renewal and expansion discussed.</p>"})
    elif name == "tasks":
        base.update({"hs_task_subject": _TASK_SUBJECTS[pick], "hs_task_body": None,
                     "hs_task_status": "COMPLETED" if pick < 3 else "NOT_STARTED",
                     "hs_task_priority": ("NONE", "LOW", "MEDIUM", "HIGH", "HIGH")[pick],
                     "hs_task_type": ("CALL", "EMAIL", "TODO", "TODO", "CALL")[pick]})
    return base, at, modified, archived


def derived_links(world: World, name: str, idx: int, tick: int) -> dict[str, list[int]]:
    """Indexes of the records a derived object is associated with, by object name."""
    parent_space, fanout = DERIVED[name]
    p = idx // fanout
    if parent_space == "companies":
        people = world.people_of_company(p, tick)
        return {"companies": [p], "contacts": people[:1]}
    if name == "line_items":
        return {"deals": [p]}
    contact = world.contact_of_deal(p, tick)
    company = world.company_of(contact)
    return {"deals": [p], "contacts": [contact], "companies": [] if company is None else [company]}


#: HUBSPOT_DEFINED association type ids (from, to) -> typeId, and the reverse direction
ASSOC_TYPE_IDS: dict[tuple[str, str], int] = {
    ("line_items", "deals"): 20, ("deals", "line_items"): 19,
    ("calls", "contacts"): 194, ("calls", "companies"): 182, ("calls", "deals"): 206,
    ("emails", "contacts"): 198, ("emails", "companies"): 186, ("emails", "deals"): 210,
    ("meetings", "contacts"): 200, ("meetings", "companies"): 188, ("meetings", "deals"): 212,
    ("notes", "contacts"): 202, ("notes", "companies"): 190, ("notes", "deals"): 214,
    ("tasks", "contacts"): 204, ("tasks", "companies"): 192, ("tasks", "deals"): 216,
}
