"""The canonical vocabulary: entities every vendor's records are mapped onto.

Each entity is a fixed list of typed columns plus the provenance columns every canonical row
carries. The primary key of every canonical row is ``id``: a stable hash of (source system,
source instance, source object, source record id), see :func:`core.lineage.row_key`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

__all__ = ["ENTITIES", "PROVENANCE", "Column", "Entity", "entity"]


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    description: str
    #: a mapping must fill it, else the record is rejected
    required: bool = False


TS = pa.timestamp("us", tz="UTC")
STR = pa.string()
DEC = pa.decimal128(18, 4)


@dataclass(frozen=True)
class Entity:
    name: str
    description: str
    columns: tuple[Column, ...]

    @property
    def all_columns(self) -> tuple[Column, ...]:
        """Key, business columns, extras, then provenance: the column order of the table."""
        return (ID, *self.columns, EXTRAS, *PROVENANCE)

    def column(self, name: str) -> Column:
        for c in self.all_columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def mappable(self) -> list[str]:
        """Columns a mapping file may fill (business columns)."""
        return [c.name for c in self.columns]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=not c.required and c.name != "id")
                          for c in self.all_columns])


ID = Column("id", STR, "Stable hash of (source_system, source_instance, source_object, source_record_id).", True)
EXTRAS = Column("extras", STR, "Vendor fields the mapping does not name, as a JSON object: kept, never dropped.")

PROVENANCE: tuple[Column, ...] = (
    Column("source_system", STR, "Vendor system, e.g. hubspot, salesforce.", True),
    Column("source_instance", STR, "Which account/portal/org of that vendor.", True),
    Column("source_object", STR, "Vendor object the row came from, e.g. contacts, Lead.", True),
    Column("source_record_id", STR, "The vendor's id of the record.", True),
    Column("source_updated_at", TS, "The vendor's last-modified time of the record."),
    Column("is_deleted", pa.bool_(), "True when the vendor deleted or archived the record.", True),
    Column("deleted_at", TS, "When the vendor deleted or archived it, if known."),
    Column("extracted_at", TS, "When factoryline read the record from the vendor.", True),
    Column("run_id", STR, "The factoryline run that loaded the row (see the runs table).", True),
    Column("mapping_version", STR, "Content hash of the mapping file that produced the row.", True),
    Column("raw_table", STR, "Raw table holding the vendor record, e.g. hubspot__contacts.", True),
    Column("raw_key", STR, "Key of the vendor record in raw_table.", True),
)
# dlt adds _dlt_load_id to every row: the load (see _dlt_loads) the row arrived in.


def _e(name: str, description: str, *cols: Column) -> Entity:
    return Entity(name, description, cols)


ENTITIES: dict[str, Entity] = {e.name: e for e in (
    _e("person", "A human the company markets or sells to: lead, contact, subscriber, customer.",
       Column("email", STR, "Normalised email (trimmed, lower-case)."),
       Column("first_name", STR, "Given name."),
       Column("last_name", STR, "Family name."),
       Column("phone", STR, "Phone number as the vendor holds it."),
       Column("job_title", STR, "Job title."),
       Column("company_name", STR, "Company name as typed on the person record."),
       Column("account_id", STR, "Canonical id of the account the person belongs to."),
       Column("owner_id", STR, "Vendor id of the owning user."),
       Column("lifecycle_stage", STR, "Vendor funnel stage mapped to a canonical stage."),
       Column("lead_status", STR, "Vendor lead status as given."),
       Column("lead_source", STR, "Original source / channel of the person."),
       Column("social_handle", STR, "Social handle (X) known for the person."),
       Column("city", STR, "City."),
       Column("region", STR, "State or region."),
       Column("country", STR, "Country."),
       Column("created_at", TS, "When the vendor created the record.")),
    _e("account", "An organisation: company, account, customer business.",
       Column("name", STR, "Company name.", True),
       Column("domain", STR, "Primary web domain, lower-case."),
       Column("industry", STR, "Industry."),
       Column("employees", pa.int64(), "Number of employees."),
       Column("annual_revenue", DEC, "Annual revenue."),
       Column("owner_id", STR, "Vendor id of the owning user."),
       Column("lifecycle_stage", STR, "Vendor funnel stage mapped to a canonical stage."),
       Column("city", STR, "City."),
       Column("region", STR, "State or region."),
       Column("country", STR, "Country."),
       Column("created_at", TS, "When the vendor created the record.")),
    _e("campaign", "A marketing campaign or program: email, webinar, event, ads, content.",
       Column("name", STR, "Campaign name.", True),
       Column("campaign_type", STR, "Type: email, webinar, event, ads, social, content, other."),
       Column("status", STR, "Status as given by the vendor."),
       Column("channel", STR, "Canonical channel."),
       Column("budget", DEC, "Budgeted cost."),
       Column("actual_cost", DEC, "Actual cost."),
       Column("start_date", TS, "Start."),
       Column("end_date", TS, "End."),
       Column("created_at", TS, "When the vendor created the record.")),
    _e("campaign_membership", "A person's membership of a campaign, with status.",
       Column("campaign_id", STR, "Canonical campaign id.", True),
       Column("person_id", STR, "Canonical person id.", True),
       Column("status", STR, "Membership status (sent, responded, attended, ...)."),
       Column("responded", pa.bool_(), "True when the member responded / reached success."),
       Column("first_responded_at", TS, "When the member first responded."),
       Column("created_at", TS, "When the membership was created.")),
    _e("touch", "One marketing or sales activity involving a person.",
       Column("person_id", STR, "Canonical person id."),
       Column("account_id", STR, "Canonical account id."),
       Column("campaign_id", STR, "Canonical campaign id."),
       Column("touch_type", STR, "email_send, email_open, click, form_submission, webinar, ad_click, "
              "social_mention, call, meeting, ...", True),
       Column("channel", STR, "email, web, social, paid, event, sales, ..."),
       Column("category", STR, "marketing or sales activity (see the definitions)."),
       Column("occurred_at", TS, "When it happened.", True),
       Column("subject", STR, "Subject, title or text excerpt."),
       Column("url", STR, "URL involved (clicked link, form page)."),
       Column("social_handle", STR, "Author handle for social touches.")),
    _e("lifecycle_event", "A person or account entering a canonical funnel stage.",
       Column("person_id", STR, "Canonical person id."),
       Column("account_id", STR, "Canonical account id."),
       Column("stage", STR, "Canonical stage entered.", True),
       Column("occurred_at", TS, "When the stage was entered.", True),
       Column("definition_version", STR, "Version of the definition that produced the event."),
       Column("term", STR, "Glossary term whose rule produced the event (mappings/definitions.yaml)."),
       Column("unified_person_id", STR, "Cross-system person id of person_id (see identity_link).")),
    _e("opportunity", "A sales opportunity / deal.",
       Column("name", STR, "Name."),
       Column("account_id", STR, "Canonical account id."),
       Column("person_id", STR, "Canonical id of the primary contact."),
       Column("amount", DEC, "Amount."),
       Column("currency", STR, "ISO currency code."),
       Column("stage", STR, "Vendor stage value."),
       Column("pipeline", STR, "Vendor pipeline."),
       Column("is_closed", pa.bool_(), "Closed (won or lost)."),
       Column("is_won", pa.bool_(), "Closed and won."),
       Column("close_date", TS, "Expected or actual close date."),
       Column("owner_id", STR, "Vendor id of the owning user."),
       Column("created_at", TS, "When the vendor created the record.")),
    _e("order", "A shop order.",
       Column("order_number", STR, "Human order number / name."),
       Column("person_id", STR, "Canonical customer person id."),
       Column("email", STR, "Normalised customer email."),
       Column("total_amount", DEC, "Total price."),
       Column("currency", STR, "ISO currency code."),
       Column("financial_status", STR, "Payment status."),
       Column("is_cancelled", pa.bool_(), "Cancelled."),
       Column("is_test", pa.bool_(), "Test order."),
       Column("landing_site", STR, "Landing page URL."),
       Column("referring_site", STR, "Referrer URL."),
       Column("utm_source", STR, "utm_source."),
       Column("utm_medium", STR, "utm_medium."),
       Column("utm_campaign", STR, "utm_campaign."),
       Column("ordered_at", TS, "When the order was placed.", True)),
    _e("order_line", "One line of an order.",
       Column("order_id", STR, "Canonical order id.", True),
       Column("sku", STR, "SKU."),
       Column("product_name", STR, "Product title."),
       Column("quantity", pa.int64(), "Quantity."),
       Column("unit_price", DEC, "Unit price."),
       Column("total_amount", DEC, "Line total.")),
    _e("identity_link", "Two person records known to be the same human, and the rule that says so.",
       Column("person_id", STR, "Canonical person id.", True),
       Column("linked_person_id", STR, "The other canonical person id.", True),
       Column("rule", STR, "Rule that made the link (email, crossref, social_handle, ...).", True),
       Column("confidence", pa.float64(), "0..1."),
       Column("unified_person_id", STR, "Stable cross-system person id.")),
    _e("attribution_credit", "A share of a conversion credited to one touch under a named model.",
       Column("conversion_type", STR, "opportunity or order.", True),
       Column("conversion_id", STR, "Canonical id of the opportunity or order.", True),
       Column("touch_id", STR, "Canonical touch id.", True),
       Column("model", STR, "first, last, linear, position_based, time_decay, w_shaped, ...", True),
       Column("model_params", STR, "JSON parameters of the model."),
       Column("credit", pa.float64(), "Share in 0..1; credits of one conversion and model sum to 1.", True),
       Column("lookback_days", pa.int64(), "Lookback window used."),
       Column("converted_at", TS, "When the conversion happened."),
       Column("touch_occurred_at", TS, "When the credited touch happened."),
       Column("touch_type", STR, "Touch type of the credited touch."),
       Column("unified_person_id", STR, "Cross-system person id the touch was stitched to."),
       Column("position", pa.int64(), "1-based place of the touch in the conversion's ordered touches."),
       Column("touch_count", pa.int64(), "Touches of the conversion inside the lookback window.")),
)}


def entity(name: str) -> Entity:
    """The entity called ``name``; a KeyError lists the valid names."""
    try:
        return ENTITIES[name]
    except KeyError:
        raise KeyError(f"unknown canonical entity {name!r} (valid: {', '.join(sorted(ENTITIES))})") from None
