"""Shopify GraphQL Admin API constants: endpoint, page sizes, the queries the connector sends."""

from __future__ import annotations

__all__ = [
    "API_VERSION",
    "BULK_CANCEL_MUTATION",
    "BULK_RUN_MUTATION",
    "BULK_STATUS_QUERY",
    "BULK_STREAM_FIELDS",
    "CONNECTION_QUERY",
    "CURRENT_BULK_QUERY",
    "CUSTOMER_FIELDS",
    "DEFAULT_BASE_URL",
    "DEFAULT_PAGE_SIZE",
    "LINE_ITEMS_PAGE",
    "LINE_ITEM_FIELDS",
    "MAX_PAGE_SIZE",
    "ORDER_FIELDS",
    "ORDER_LINES_QUERY",
    "PROBE_QUERY",
    "STREAMS",
    "node_fields",
]

#: the shop's own host is ``https://{shop}.myshopify.com``; the sandbox hands over its base_url
DEFAULT_BASE_URL = "https://example.myshopify.com"
API_VERSION = "2025-01"
MAX_PAGE_SIZE = 250
#: orders per connection page; lowered automatically so a query stays under the 1,000-point cap
DEFAULT_PAGE_SIZE = 100
#: line items read inline with each order; an order with more is completed by order(id:) queries
LINE_ITEMS_PAGE = 5
DEFAULT_BULK_POLL_SECONDS = 0.25
DEFAULT_BULK_POLL_MAX_SECONDS = 10.0
DEFAULT_BULK_TIMEOUT_SECONDS = 3600.0
#: an incremental window longer than this (a long-stale cursor) is fetched by a bulk operation too
DEFAULT_BULK_WINDOW_DAYS = 30.0
#: records per yielded page on the bulk path
DEFAULT_BULK_PAGE_RECORDS = 1000

STREAMS = ("customers", "orders")

MONEY = "amount currencyCode"
BAG = f"shopMoney {{ {MONEY} }} presentmentMoney {{ {MONEY} }}"

LINE_ITEM_FIELDS = f"""id sku title name quantity currentQuantity vendor
  originalUnitPriceSet {{ shopMoney {{ {MONEY} }} }} originalTotalSet {{ shopMoney {{ {MONEY} }} }}"""

ORDER_FIELDS = f"""id legacyResourceId name email phone createdAt updatedAt processedAt cancelledAt cancelReason
  closed closedAt test confirmed sourceName displayFinancialStatus displayFulfillmentStatus currencyCode
  presentmentCurrencyCode tags note
  totalPriceSet {{ {BAG} }} currentTotalPriceSet {{ shopMoney {{ {MONEY} }} }}
  customer {{ id email }}
  customerJourneySummary {{ ready customerOrderIndex daysToConversion
    firstVisit {{ landingPage referrerUrl source sourceType occurredAt utmParameters {{ source medium campaign content term }} }} }}"""

CUSTOMER_FIELDS = f"""id legacyResourceId email firstName lastName displayName phone createdAt updatedAt numberOfOrders
  amountSpent {{ {MONEY} }} state verifiedEmail tags note"""



def node_fields(stream: str, line_items: int = LINE_ITEMS_PAGE) -> str:
    """Fields of a stream's nodes in a connection query (orders: the first ``line_items`` lines)."""
    if stream == "orders":
        return (f"{ORDER_FIELDS}\n  lineItems(first: {line_items}) {{ nodes {{ {LINE_ITEM_FIELDS} }} "
                "pageInfo { hasNextPage endCursor } }")
    return CUSTOMER_FIELDS

#: one page of a stream, oldest change first (``sortKey: UPDATED_AT``)
CONNECTION_QUERY = """query {name}Page($first: Int!, $after: String, $query: String) {{
  {name}(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    nodes {{ {fields} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""

#: the rest of an order's line items, when it has more than LINE_ITEMS_PAGE
ORDER_LINES_QUERY = f"""query OrderLines($id: ID!, $after: String) {{
  order(id: $id) {{ lineItems(first: 100, after: $after) {{ nodes {{ {LINE_ITEM_FIELDS} }}
    pageInfo {{ hasNextPage endCursor }} }} }}
}}"""

#: node fields of a bulk query: nested connections without ``first`` (the JSONL carries ``__parentId``)
BULK_STREAM_FIELDS = {
    "orders": f"{ORDER_FIELDS}\n  lineItems {{ edges {{ node {{ {LINE_ITEM_FIELDS} }} }} }}",
    "customers": CUSTOMER_FIELDS,
}

#: the cheapest query (1 point): its cost extension tells the bucket's state
PROBE_QUERY = "query Probe { shop { id } }"

BULK_RUN_MUTATION = """mutation RunBulk($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}"""

BULK_FIELDS = "id status errorCode createdAt completedAt objectCount rootObjectCount fileSize url partialDataUrl query"

BULK_STATUS_QUERY = f"""query BulkStatus($id: ID!) {{ bulkOperation(id: $id) {{ {BULK_FIELDS} }} }}"""

CURRENT_BULK_QUERY = f"""query CurrentBulk {{ currentBulkOperation(type: QUERY) {{ {BULK_FIELDS} }} }}"""

BULK_CANCEL_MUTATION = """mutation CancelBulk($id: ID!) {
  bulkOperationCancel(id: $id) { bulkOperation { id status } userErrors { field message } }
}"""
