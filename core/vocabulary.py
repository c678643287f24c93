"""One vocabulary of touch types and channels, shared by every vendor's mappings.

The same click is a ``click`` whether HubSpot, Marketo or Mailchimp reported it. Mapping files
name these values (through ``enum`` tables or ``constant``); ``tests/test_vocabulary.py`` checks
every mapping file against this module, and attribution and the definitions read it too.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATEGORIES", "CHANNELS", "TOUCH_TYPES", "TouchType", "touch_type"]

#: where a touch happened
CHANNELS: dict[str, str] = {
    "email": "Marketing email (sends, opens, clicks in emails, bounces, unsubscribes).",
    "web": "The company's own web pages and forms.",
    "social": "Social networks (posts, mentions, replies).",
    "paid": "Paid media: ads, sponsored content.",
    "event": "Webinars, conferences, trade shows, in-person events.",
    "sales": "One-to-one sales contact: calls, meetings, sales emails, notes, tasks.",
    "direct": "Direct or unknown referrer (e.g. an order with no attributable source).",
    "other": "Anything the vendor did not let us place.",
}

#: who produced the touch (see the ``marketing activity`` and ``sales activity`` definitions)
CATEGORIES: tuple[str, ...] = ("marketing", "sales")


@dataclass(frozen=True)
class TouchType:
    name: str
    #: the channel this type normally belongs to; a mapping may name another (a click on the web)
    channel: str
    category: str
    description: str


def _t(name: str, channel: str, category: str, description: str) -> TouchType:
    return TouchType(name, channel, category, description)


TOUCH_TYPES: dict[str, TouchType] = {t.name: t for t in (
    _t("email_send", "email", "marketing", "A marketing email was sent to the person."),
    _t("email_delivered", "email", "marketing", "The receiving server accepted the email."),
    _t("email_open", "email", "marketing", "The person opened a marketing email."),
    _t("click", "email", "marketing", "The person clicked a link (in an email, or on a page with channel web)."),
    _t("bounce", "email", "marketing", "The email bounced (hard or soft)."),
    _t("unsubscribe", "email", "marketing", "The person unsubscribed or changed subscription to opt out."),
    _t("spam_report", "email", "marketing", "The person reported the email as spam."),
    _t("form_submission", "web", "marketing", "The person submitted a form."),
    _t("page_view", "web", "marketing", "The person viewed a tracked web page."),
    _t("content_download", "web", "marketing", "The person downloaded gated content."),
    _t("webinar_registration", "event", "marketing", "The person registered for a webinar."),
    _t("webinar_attendance", "event", "marketing", "The person attended a webinar."),
    _t("event_attendance", "event", "marketing", "The person attended an event (conference, trade show)."),
    _t("campaign_response", "other", "marketing", "The person responded to a campaign (program success)."),
    _t("program_status_change", "other", "marketing", "The person's status in a program changed."),
    _t("ad_click", "paid", "marketing", "The person clicked a paid ad."),
    _t("social_mention", "social", "marketing", "A post mentioning the brand or its account."),
    _t("social_reply", "social", "marketing", "A reply to one of the brand's posts."),
    _t("call", "sales", "sales", "A sales call."),
    _t("meeting", "sales", "sales", "A sales meeting."),
    _t("sales_email", "sales", "sales", "A one-to-one email logged by sales."),
    _t("note", "sales", "sales", "A note logged on the record by sales."),
    _t("task", "sales", "sales", "A sales task (follow-up, to-do)."),
    _t("other", "other", "marketing", "A vendor activity with no better canonical type; see extras."),
)}


def touch_type(name: str) -> TouchType:
    """The touch type called ``name``; a KeyError lists the valid names."""
    try:
        return TOUCH_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown touch type {name!r} (valid: {', '.join(sorted(TOUCH_TYPES))})") from None
