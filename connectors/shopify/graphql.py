"""The subset of Shopify's GraphQL Admin API schema the sandbox emulator serves, and query cost.

Type, field, argument and enum names are Shopify's (Admin API 2024-10 and later); only the part
that connectors read is declared, so an unknown field is a validation error, as it is at Shopify.
Custom scalars are serialised as Shopify does: ``DateTime`` as ``2026-01-02T03:04:05Z``,
``Decimal`` and ``UnsignedInt64`` as strings.

REST (``shopify_admin_rest_2021-10.openapi.yml``) to GraphQL mapping of the fields served:

======================================  =============================================================
REST ``order``                          GraphQL ``Order``
======================================  =============================================================
id (integer)                            legacyResourceId (UnsignedInt64 as string); id is the gid
name, email, test, tags (comma string)  name, email, test, tags ([String!]!)
created_at, updated_at, cancelled_at    createdAt, updatedAt, cancelledAt
processed_at, cancel_reason             processedAt, cancelReason (enum)
financial_status, fulfillment_status    displayFinancialStatus, displayFulfillmentStatus (enums)
currency, presentment_currency          currencyCode, presentmentCurrencyCode
total_price, total_price_set            totalPriceSet {shopMoney presentmentMoney}
current_total_price(_set)               currentTotalPriceSet
subtotal_price                          subtotalPriceSet
landing_site, referring_site            customerJourneySummary.firstVisit.landingPage / referrerUrl
                                        (+ utmParameters parsed from the landing page)
customer {id email first_name ...}      customer {id email firstName lastName ...}
line_items[] {id sku title quantity     lineItems(first:) {nodes {id sku title quantity
price}                                  originalUnitPriceSet}}
======================================  =============================================================

REST ``customer``: id, email, first_name, last_name, phone, created_at, updated_at,
orders_count, total_spent, tags, state, verified_email map to Customer id/legacyResourceId, email,
firstName, lastName, phone, createdAt, updatedAt, numberOfOrders, amountSpent {amount
currencyCode}, tags, state, verifiedEmail.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    build_schema,
    get_named_type,
    is_interface_type,
    is_object_type,
)

__all__ = ["SCHEMA", "SDL", "query_cost"]

SDL = '''
scalar DateTime
scalar Decimal
scalar URL
scalar UnsignedInt64

enum CurrencyCode { USD EUR GBP CAD AUD NZD JPY CHF SEK NOK DKK PLN CZK BRL MXN INR SGD HKD ZAR }
enum OrderSortKeys { CREATED_AT CUSTOMER_NAME DESTINATION FINANCIAL_STATUS FULFILLMENT_STATUS ID ORDER_NUMBER
  PO_NUMBER PROCESSED_AT RELEVANCE TOTAL_ITEMS_QUANTITY TOTAL_PRICE UPDATED_AT }
enum CustomerSortKeys { CREATED_AT ID LOCATION NAME RELEVANCE UPDATED_AT }
enum OrderDisplayFinancialStatus { AUTHORIZED EXPIRED PAID PARTIALLY_PAID PARTIALLY_REFUNDED PENDING REFUNDED VOIDED }
enum OrderDisplayFulfillmentStatus { FULFILLED IN_PROGRESS ON_HOLD OPEN PARTIALLY_FULFILLED PENDING_FULFILLMENT
  RESTOCKED SCHEDULED UNFULFILLED }
enum OrderCancelReason { CUSTOMER DECLINED FRAUD INVENTORY OTHER STAFF }
enum CustomerState { DECLINED DISABLED ENABLED INVITED }
enum BulkOperationStatus { CANCELED CANCELING COMPLETED CREATED EXPIRED FAILED RUNNING }
enum BulkOperationType { MUTATION QUERY }
enum BulkOperationErrorCode { ACCESS_DENIED INTERNAL_SERVER_ERROR TIMEOUT }
enum BulkOperationUserErrorCode { INVALID OPERATION_IN_PROGRESS }

type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String }
type MoneyV2 { amount: Decimal! currencyCode: CurrencyCode! }
type MoneyBag { shopMoney: MoneyV2! presentmentMoney: MoneyV2! }

type UTMParameters { source: String medium: String campaign: String content: String term: String }
type CustomerVisit { id: ID! landingPage: URL landingPageHtml: String referrerUrl: URL referralCode: String
  source: String! sourceType: String sourceDescription: String occurredAt: DateTime! utmParameters: UTMParameters }
type CustomerJourneySummary { ready: Boolean! customerOrderIndex: Int daysToConversion: Int momentsCount: Int
  firstVisit: CustomerVisit lastVisit: CustomerVisit }

type LineItem { id: ID! sku: String title: String! name: String! quantity: Int! currentQuantity: Int!
  variantTitle: String vendor: String originalUnitPriceSet: MoneyBag! originalTotalSet: MoneyBag!
  discountedUnitPriceSet: MoneyBag! }
type LineItemEdge { cursor: String! node: LineItem! }
type LineItemConnection { edges: [LineItemEdge!]! nodes: [LineItem!]! pageInfo: PageInfo! }

type Order { id: ID! legacyResourceId: UnsignedInt64! name: String! email: String phone: String
  createdAt: DateTime! updatedAt: DateTime! processedAt: DateTime! cancelledAt: DateTime closedAt: DateTime
  cancelReason: OrderCancelReason closed: Boolean! test: Boolean! confirmed: Boolean! sourceName: String
  displayFinancialStatus: OrderDisplayFinancialStatus displayFulfillmentStatus: OrderDisplayFulfillmentStatus!
  currencyCode: CurrencyCode! presentmentCurrencyCode: CurrencyCode!
  totalPriceSet: MoneyBag! currentTotalPriceSet: MoneyBag! subtotalPriceSet: MoneyBag
  totalDiscountsSet: MoneyBag totalTaxSet: MoneyBag
  customer: Customer customerJourneySummary: CustomerJourneySummary
  lineItems(first: Int, after: String, last: Int, before: String, reverse: Boolean = false): LineItemConnection!
  tags: [String!]! note: String }
type OrderEdge { cursor: String! node: Order! }
type OrderConnection { edges: [OrderEdge!]! nodes: [Order!]! pageInfo: PageInfo! }

type Customer { id: ID! legacyResourceId: UnsignedInt64! email: String firstName: String lastName: String
  displayName: String! phone: String createdAt: DateTime! updatedAt: DateTime! numberOfOrders: UnsignedInt64!
  amountSpent: MoneyV2! state: CustomerState! verifiedEmail: Boolean! tags: [String!]! note: String
  orders(first: Int, after: String, last: Int, before: String, reverse: Boolean = false, query: String,
         sortKey: OrderSortKeys = ID): OrderConnection! }
type CustomerEdge { cursor: String! node: Customer! }
type CustomerConnection { edges: [CustomerEdge!]! nodes: [Customer!]! pageInfo: PageInfo! }

type BulkOperation { id: ID! status: BulkOperationStatus! errorCode: BulkOperationErrorCode createdAt: DateTime!
  completedAt: DateTime objectCount: UnsignedInt64! rootObjectCount: UnsignedInt64! fileSize: UnsignedInt64
  url: URL partialDataUrl: URL query: String! type: BulkOperationType! }
type BulkOperationUserError { field: [String!] message: String! code: BulkOperationUserErrorCode }
type BulkOperationRunQueryPayload { bulkOperation: BulkOperation userErrors: [BulkOperationUserError!]! }
type BulkOperationCancelPayload { bulkOperation: BulkOperation userErrors: [BulkOperationUserError!]! }

type Shop { id: ID! name: String! email: String! myshopifyDomain: String! currencyCode: CurrencyCode!
  ianaTimezone: String! }

type QueryRoot {
  orders(first: Int, after: String, last: Int, before: String, reverse: Boolean = false, query: String,
         sortKey: OrderSortKeys = ID): OrderConnection!
  order(id: ID!): Order
  customers(first: Int, after: String, last: Int, before: String, reverse: Boolean = false, query: String,
            sortKey: CustomerSortKeys = ID): CustomerConnection!
  customer(id: ID!): Customer
  currentBulkOperation(type: BulkOperationType = QUERY): BulkOperation
  bulkOperation(id: ID!): BulkOperation
  shop: Shop!
}

type Mutation {
  bulkOperationRunQuery(query: String!, groupObjects: Boolean = false): BulkOperationRunQueryPayload
  bulkOperationCancel(id: ID!): BulkOperationCancelPayload
}

schema { query: QueryRoot mutation: Mutation }
'''

SCHEMA: GraphQLSchema = build_schema(SDL)
MUTATION_COST = 10


def _int_arg(field: FieldNode, name: str, variables: dict[str, Any]) -> int | None:
    for arg in field.arguments or ():
        if arg.name.value != name:
            continue
        value = arg.value
        if isinstance(value, IntValueNode):
            return int(value.value)
        if isinstance(value, VariableNode):
            raw = variables.get(value.name.value)
            return raw if isinstance(raw, int) else None
    return None


def _selection_cost(selection_set: SelectionSetNode | None, parent: GraphQLObjectType,
                    fragments: dict[str, FragmentDefinitionNode], variables: dict[str, Any]) -> int:
    if selection_set is None:
        return 0
    total = 0
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            field = parent.fields.get(sel.name.value)
            if field is None:
                continue
            named = get_named_type(field.type)
            if not (is_object_type(named) or is_interface_type(named)):
                continue
            assert isinstance(named, GraphQLObjectType)
            if named.name.endswith("Connection"):
                size = _int_arg(sel, "first", variables) or _int_arg(sel, "last", variables) or 0
                node_cost = 0
                for sub in (sel.selection_set.selections if sel.selection_set else ()):
                    if not isinstance(sub, FieldNode):
                        continue
                    if sub.name.value == "nodes":
                        node_type = get_named_type(named.fields["nodes"].type)
                        assert isinstance(node_type, GraphQLObjectType)
                        node_cost = max(node_cost, 1 + _selection_cost(sub.selection_set, node_type, fragments,
                                                                       variables))
                    elif sub.name.value == "edges" and sub.selection_set:
                        edge_type = get_named_type(named.fields["edges"].type)
                        assert isinstance(edge_type, GraphQLObjectType)
                        node_cost = max(node_cost, _selection_cost(sub.selection_set, edge_type, fragments,
                                                                   variables))
                total += 2 + size * node_cost
            else:
                total += 1 + _selection_cost(sel.selection_set, named, fragments, variables)
        elif isinstance(sel, InlineFragmentNode):
            cond = SCHEMA.get_type(sel.type_condition.name.value) if sel.type_condition else parent
            if isinstance(cond, GraphQLObjectType):
                total += _selection_cost(sel.selection_set, cond, fragments, variables)
        elif isinstance(sel, FragmentSpreadNode):
            frag = fragments.get(sel.name.value)
            if frag is not None:
                cond = SCHEMA.get_type(frag.type_condition.name.value)
                if isinstance(cond, GraphQLObjectType):
                    total += _selection_cost(frag.selection_set, cond, fragments, variables)
    return total


def query_cost(document: DocumentNode, operation_name: str | None, variables: dict[str, Any]) -> int:
    """Shopify-style requested cost: 1 per object, 2 + first x (node cost) per connection, scalars
    free, 10 for a mutation."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    op = next((o for o in ops if operation_name is None or (o.name and o.name.value == operation_name)), None)
    if op is None:
        return 1
    if op.operation.value == "mutation":
        assert SCHEMA.mutation_type is not None
        return MUTATION_COST + _selection_cost(op.selection_set, SCHEMA.mutation_type, fragments, variables)
    assert SCHEMA.query_type is not None
    return max(1, _selection_cost(op.selection_set, SCHEMA.query_type, fragments, variables))
