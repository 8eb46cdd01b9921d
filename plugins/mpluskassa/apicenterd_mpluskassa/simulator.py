"""An in-memory MplusQapi on the simulator toolkit: SOAP 1.1 document/literal as the WSDL says.

One endpoint (``POST /?ident=...&secret=...``) dispatches on the Body element. Given the WSDL
(``wsdl=``), every request body is validated against its schema and an invalid one gets a
``Client`` SOAP fault, as a gSOAP server answers; without it the simulator checks what it reads
(numbers are numbers). Answers are built in the WSDL's field order (the tests validate them
against the schema). What it keeps: products with their articles (numeric article numbers),
article groups, VAT groups, stock per branch, relations and till orders, each change stamped
with the next sync marker; ``createOrderV3`` replays the answer for an ``idempotencyKey`` it
has seen.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from apicenterd.testing.sim import VendorError, VendorSim, seeded

from . import mapping, soap
from .schema import body_errors, load_schema

__all__ = ["create_app", "MplusSim", "DEMO_IDENT", "DEMO_SECRET", "fault_xml", "response_xml"]

DEMO_IDENT = "apicenterd-demo"
DEMO_SECRET = "mplus-demo-secret"
_ENV = f"{{{soap.SOAP_ENV}}}"
BRANCHES = {1: ("Winkel", "WNK"), 2: ("Magazijn", "MAG")}
VAT_GROUPS = ((1, 21), (2, 9), (3, 0))


class SoapVendorError(VendorError):
    """A SOAP fault the simulator answers (``code``: Client or Server)."""


def fault_xml(code: str, message: str) -> bytes:
    """A SOAP 1.1 Fault envelope as gSOAP writes it."""
    root = etree.Element(_ENV + "Envelope", nsmap={"SOAP-ENV": soap.SOAP_ENV, "ns": soap.NS})
    body = etree.SubElement(root, _ENV + "Body")
    fault = etree.SubElement(body, _ENV + "Fault")
    etree.SubElement(fault, "faultcode").text = f"SOAP-ENV:{code}"
    etree.SubElement(fault, "faultstring").text = message
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def response_xml(name: str, fields: Mapping[str, Any]) -> bytes:
    """A SOAP answer: the Body element ``name`` with ``fields`` as children, in their order."""
    root = etree.Element(_ENV + "Envelope", nsmap={"SOAP-ENV": soap.SOAP_ENV, "ns": soap.NS})
    body = etree.SubElement(root, _ENV + "Body")
    node = etree.SubElement(body, f"{{{soap.NS}}}{name}")
    for key, value in fields.items():
        node.extend(soap.element(key, value))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _xml(content: bytes, status: int = 200) -> Response:
    return Response(content, status_code=status, media_type="text/xml; charset=utf-8")


def _int(value: Any, what: str) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise SoapVendorError(500, "Client", f"Validation constraint violation: {what} {value!r:.40} is not an integer") from None


def _now() -> dict[str, Any]:
    return soap.mplus_datetime(datetime.now(timezone.utc))


class MplusSim(VendorSim):
    """The state of one simulated MplusKASSA server."""

    def __init__(self, *, seed: int = 1, records: int = 0, relations: int = 0, orders: int = 0, wsdl: str | Path | None = None):
        super().__init__()
        self.ident, self.secret = DEMO_IDENT, DEMO_SECRET
        self.schema = load_schema(wsdl) if wsdl is not None else None
        self.gates = [self.auth_gate, self.fault_gate]
        self.markers = itertools.count(1)
        self.products: dict[int, dict[str, Any]] = {}  # productNumber -> {"productNumber", "description", ..., "articles": [...]}
        self.article_product: dict[int, int] = {}  # articleNumber -> productNumber
        self.groups: dict[int, dict[str, Any]] = {}
        self.stock: dict[tuple[int, int], tuple[int, int]] = {}  # (branch, article) -> (amount, places)
        self.stock_ids = itertools.count(1)
        self.stock_change: dict[tuple[int, int], int] = {}  # (branch, article) -> the stockId of its last change
        self.relations: dict[int, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.idempotent: dict[str, bytes] = {}
        self.received: list[tuple[str, bytes]] = []  # (operation, request body) for conformance tests
        self._next_product = itertools.count(1)
        self._next_article = itertools.count(100_001)
        self._next_relation = itertools.count(1)
        self._next_group = itertools.count(10)
        self._next_order = itertools.count(1)
        self._seed(seed, records, relations, orders)

    # -- toolkit hooks ---------------------------------------------------------------

    def error_response(self, exc: VendorError) -> Response:
        """A SOAP fault (HTTP 500 as SOAP 1.1 says; 401 for a refused ident/secret)."""
        return _xml(fault_xml(str(exc.code), exc.message), exc.status)

    def target(self, request: Request) -> str:
        """The request log records the path only: the query holds the secret."""
        return request.url.path

    def auth_gate(self, request: Request) -> None:
        """``ident`` and ``secret`` in the query, as the vendor wants them."""
        if request.query_params.get("ident") != self.ident or request.query_params.get("secret") != self.secret:
            raise SoapVendorError(401, "Client", "Authentication failed: unknown ident or wrong secret")

    # -- seeding ---------------------------------------------------------------------

    def _seed(self, seed: int, records: int, relations: int, orders: int) -> None:
        rng = seeded(seed, "mpluskassa")
        self.groups[1] = {"groupNumber": 1, "name": "Algemeen", "text": "Algemeen", "sortOrder": 1}
        for i in range(records):
            number = 1000 + i
            price = Decimal(rng.randint(100, 9999))
            article = {
                "articleNumber": number,
                "active": True,
                "description": f"Artikel {number}",
                "barcode": f"87{number:011d}",
                "vatCode": 1,
                "vatPercentage": 21,
                "priceIncl": int(price),
                "priceExcl": int((price / Decimal("1.21")).quantize(Decimal(1))),
                "unit": "stuk",
            }
            self._store_product({"description": f"Product {number}", "groupNumbers": [1]}, [article])
            self.stock[(1, number)] = (rng.randint(0, 50), 0)
            self.stock_change[(1, number)] = next(self.stock_ids)
        for i in range(relations):
            number = next(self._next_relation)
            self.relations[number] = {
                "relationNumber": number,
                "syncMarker": next(self.markers),
                "active": True,
                "name": f"Klant {number}",
                "address": f"Dorpsstraat {i + 1}",
                "zipcode": "1234 AB",
                "city": "Utrecht",
                "country": "NL",
                "email": f"klant{number}@example.com",
                "telephone": "030-1234567",
            }
        articles = sorted(self.article_product)
        for _ in range(orders):
            if not articles:
                break
            lines = []
            for _ in range(rng.randint(1, 3)):
                chosen = rng.choice(articles)
                product = self.products[self.article_product[chosen]]
                stored_article = next(a for a in product["articles"] if a["articleNumber"] == chosen)
                price = stored_article["priceIncl"]
                lines.append(
                    {
                        "articleNumber": chosen,
                        "text": f"Artikel {chosen}",
                        "data": {
                            "quantity": rng.randint(1, 3),
                            "decimalPlaces": 0,
                            "price": price,
                            "vatCode": stored_article.get("vatCode"),
                            "vatPercentage": stored_article.get("vatPercentage"),
                        },
                    }
                )
            relation = rng.choice(sorted(self.relations)) if self.relations and rng.random() < 0.7 else None
            self._store_order(
                {"employeeNumber": 1, "entryBranchNumber": 1, "relationNumber": relation, "fullyPaid": True, "paymentMethod": "PIN"},
                lines,
                ext=None,
            )

    # -- store -----------------------------------------------------------------------

    def _store_product(self, product: dict[str, Any], articles: list[dict[str, Any]], number: int | None = None) -> dict[str, Any]:
        number = number if number is not None else next(self._next_product)
        while number in self.products:
            number = next(self._next_product)
        marker = next(self.markers)
        stored = {**product, "productNumber": number, "syncMarker": marker, "articles": []}
        for article in articles:
            article = dict(article)
            if article.get("articleNumber") in (None, ""):
                article["articleNumber"] = self._free_article_number()
            article["articleNumber"] = _int(article["articleNumber"], "articleNumber")
            article["syncMarker"] = marker
            article["changeTimestamp"] = _now()
            stored["articles"].append(article)
            self.article_product[article["articleNumber"]] = number
        self.products[number] = stored
        return stored

    def _free_article_number(self) -> int:
        number = next(self._next_article)
        while number in self.article_product:
            number = next(self._next_article)
        return number

    def _store_order(self, order: dict[str, Any], lines: list[dict[str, Any]], *, ext: str | None) -> dict[str, Any]:
        sequence = next(self._next_order)
        order_id = f"{sequence:08d}-0000-4000-8000-{sequence:012d}"
        total = sum(
            _int(ln["data"].get("price", 0), "price")
            * _int(ln["data"]["quantity"], "quantity")
            // 10 ** _int(ln["data"].get("decimalPlaces", 0), "decimalPlaces")
            for ln in lines
        )
        relation = self.relations.get(order.get("relationNumber") or -1)
        stored = {
            **order,
            "orderId": order_id,
            "extOrderId": ext,
            "syncMarker": next(self.markers),
            "orderType": "ORDER-TYPE-SALES-ORDER",
            "entryTimestamp": _now(),
            "relationName": relation["name"] if relation else None,
            "financialDate": soap.mplus_date(datetime.now(timezone.utc).date()),
            "totalInclAmount": total,
            "totalExclAmount": int(Decimal(total) / Decimal("1.21")),
            "vatMethod": order.get("vatMethod") or "VAT-METHOD-INCLUSIVE",
            "fullyPaid": bool(order.get("fullyPaid")),
            "cancelState": "ORDER-CANCEL-STATE-NOTHING",
            "completeState": "ORDER-COMPLETE-STATE-NOTHING",
            "orderNumber": {"year": datetime.now(timezone.utc).year, "number": sequence},
            "lines": lines,
        }
        self.orders[order_id] = stored
        return stored

    # -- rendering -------------------------------------------------------------------

    def product_xml(self, product: Mapping[str, Any], articles: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """A stored product as the WSDL's ``Product``."""
        arts = product["articles"] if articles is None else articles
        return mapping.ordered(
            mapping.PRODUCT_FIELDS,
            {
                "productNumber": product["productNumber"],
                "syncMarker": product["syncMarker"],
                "description": product.get("description"),
                "extraText": product.get("extraText"),
                "articleList": {"article": [mapping.ordered(mapping.ARTICLE_FIELDS, a, drop=()) for a in arts]},
                "groupNumbers": product.get("groupNumbers") or None,
            },
            drop=(),
        )

    def order_xml(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """A stored order as the WSDL's ``Order``."""
        lines = [
            mapping.ordered(mapping.LINE_FIELDS, {**ln, "data": mapping.ordered(mapping.LINEDATA_FIELDS, ln["data"])})
            for ln in order["lines"]
        ]
        fields = {k: v for k, v in order.items() if k != "lines"}
        fields["lineList"] = {"line": lines}
        return mapping.ordered(mapping.ORDER_FIELDS, fields, drop=())

    @staticmethod
    def relation_xml(relation: Mapping[str, Any]) -> dict[str, Any]:
        """A stored relation as the WSDL's ``Relation``."""
        return mapping.ordered(mapping.RELATION_FIELDS, relation, drop=())


# -- handlers ----------------------------------------------------------------------------


async def _soap(sim: MplusSim, request: Request) -> Response:
    raw = await request.body()
    try:
        root = etree.fromstring(raw, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise SoapVendorError(500, "Client", f"XML syntax error: {exc}") from None
    body = root.find(_ENV + "Body") if root.tag == _ENV + "Envelope" else None
    payload = [c for c in body if isinstance(c.tag, str)] if body is not None else []
    if len(payload) != 1:
        raise SoapVendorError(500, "Client", "a SOAP 1.1 Envelope with one Body element was expected")
    element = payload[0]
    qname = etree.QName(element)
    if qname.namespace != soap.NS:
        raise SoapVendorError(500, "Client", f"Method '{qname.localname}' not implemented: namespace {qname.namespace!r}")
    sim.received.append((qname.localname, etree.tostring(element)))
    if sim.schema is not None:
        errors = body_errors(sim.schema, element)
        if errors:
            raise SoapVendorError(500, "Client", "Validation constraint violation: " + "; ".join(errors)[:500])
    handler = OPERATIONS.get(qname.localname)
    if handler is None:
        raise SoapVendorError(500, "Client", f"Method '{qname.localname}' not implemented: method name or namespace not recognized")
    content = soap._to_python(element)
    name, fields = handler(sim, content if isinstance(content, dict) else {})
    return _xml(response_xml(name, fields))


def _get_api_version(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "getApiVersionResponse", {"majorNumber": 67, "minorNumber": 1, "revisionNumber": 3, "inDebugMode": False}


def _get_products(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    request = soap.one(body, "request") or {}
    wanted_articles = {_int(n, "articleNumbers") for n in soap.many(request, "articleNumbers")}
    wanted_products = {_int(n, "productNumbers") for n in soap.many(request, "productNumbers")}
    wanted_plu = {soap.text(t, "text") for t in soap.many(soap.one(request, "pluNumbers"), "text")}
    marker = soap.text(request, "syncMarker")
    include_all = soap.to_bool(request, "includeAllArticlesOfSelectedProducts")
    out: list[dict[str, Any]] = []
    if wanted_articles or wanted_products or wanted_plu:
        for product in sorted(sim.products.values(), key=lambda p: p["productNumber"]):
            articles = [
                a
                for a in product["articles"]
                if a["articleNumber"] in wanted_articles or product["productNumber"] in wanted_products or a.get("pluNumber") in wanted_plu
            ]
            if articles:
                out.append(sim.product_xml(product, None if include_all or product["productNumber"] in wanted_products else articles))
    else:
        since = _int(marker, "syncMarker") if marker else 0
        limit = _int(soap.text(request, "syncMarkerLimit") or 1000, "syncMarkerLimit")
        changed = sorted((p for p in sim.products.values() if p["syncMarker"] > since), key=lambda p: p["syncMarker"])
        out = [sim.product_xml(p) for p in changed[:limit]]
    return "GetProductsResponse", {"productList": {"product": out}}


def _articles_of(product: Mapping[str, Any]) -> list[dict[str, Any]]:
    articles = []
    for article in soap.many(soap.one(product, "articleList"), "article"):
        fields = {k: v for k, v in article.items() if k in mapping.ARTICLE_FIELDS and k not in mapping.READ_ONLY}
        if "articleNumber" in fields:
            fields["articleNumber"] = _int(fields["articleNumber"], "articleNumber")
        articles.append(fields)
    return articles


def _create_product(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    product = soap.one(body, "product") or {}
    articles = _articles_of(product)
    number = soap.to_int(product, "productNumber")

    def answer(result: str, message: str = "", stored: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        return "CreateProductResponse", {
            "result": result,
            "productNumber": stored["productNumber"] if stored else 0,
            "articleNumbers": [a["articleNumber"] for a in stored["articles"]] if stored else None,
            "syncMarker": stored["syncMarker"] if stored else None,
            "errorMessage": message,
        }

    if number is not None and number in sim.products:
        return answer("CREATE-PRODUCT-RESULT-FAILED-PRODUCT-NUMBER-ALREADY-TAKEN", f"product number {number} is taken")
    for article in articles:
        if article.get("articleNumber") in sim.article_product:
            return answer(
                "CREATE-PRODUCT-RESULT-FAILED-ARTICLE-NUMBER-ALREADY-TAKEN", f"article number {article['articleNumber']} is taken"
            )
    if not articles:
        return answer("CREATE-PRODUCT-RESULT-FAILED", "a product needs at least one article")
    fields = {k: product[k] for k in ("description", "extraText") if k in product}
    fields["groupNumbers"] = [_int(g, "groupNumbers") for g in soap.many(product, "groupNumbers")]
    return answer("CREATE-PRODUCT-RESULT-OK", "", sim._store_product(fields, articles, number))


def _update_product(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    product = soap.one(body, "product") or {}
    number = soap.to_int(product, "productNumber")

    def answer(
        result: str, message: str = "", existing: list[int] | None = None, new: list[int] | None = None, marker: int | None = None
    ) -> tuple[str, dict[str, Any]]:
        return "UpdateProductResponse", {
            "result": result,
            "existingArticleNumbers": existing,
            "newArticleNumbers": new,
            "syncMarker": marker,
            "errorMessage": message,
        }

    if number is None or number not in sim.products:
        return answer("UPDATE-PRODUCT-RESULT-NOT-FOUND", f"product {number} not found")
    stored = sim.products[number]
    articles = _articles_of(product)
    for article in articles:
        owner = sim.article_product.get(article.get("articleNumber") or -1)
        if owner is not None and owner != number:
            return answer(
                "UPDATE-PRODUCT-RESULT-FAILED-ARTICLE-NUMBER-ALREADY-TAKEN",
                f"article {article['articleNumber']} belongs to product {owner}",
            )
    marker = next(sim.markers)
    by_number = {a["articleNumber"]: a for a in stored["articles"]}
    existing: list[int] = []
    new: list[int] = []
    for article in articles:
        if not article.get("articleNumber"):
            article["articleNumber"] = sim._free_article_number()
        article.update(syncMarker=marker, changeTimestamp=_now())
        (existing if article["articleNumber"] in by_number else new).append(article["articleNumber"])
        by_number[article["articleNumber"]] = article
        sim.article_product[article["articleNumber"]] = number
    stored["articles"] = sorted(by_number.values(), key=lambda a: a["articleNumber"])
    stored["syncMarker"] = marker
    for field in ("description", "extraText"):
        if field in product:
            stored[field] = product[field]
    if "groupNumbers" in product:
        stored["groupNumbers"] = [_int(g, "groupNumbers") for g in soap.many(product, "groupNumbers")]
    return answer("UPDATE-PRODUCT-RESULT-OK", "", existing or None, new or None, marker)


def _get_stock(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The stock of the listed articles in the branches; with ``stockId``, only what changed after it
    (every article when the list is empty)."""
    request = soap.one(body, "request") or {}
    branches = [_int(b, "branchNumber") for b in soap.many(soap.one(request, "branchNumbers"), "branchNumber")]
    if not branches:
        branches = [_int(soap.text(request, "branchNumber"), "branchNumber")]
    numbers = [_int(n, "articleNumbers") for n in soap.many(soap.one(request, "articleNumbers"), "articleNumbers")]
    since = soap.text(request, "stockId")
    if since is not None and since.strip():
        after = _int(since, "stockId")
        wanted = set(numbers)
        keys = sorted(
            (
                key
                for key, stock_id in sim.stock_change.items()
                if stock_id > after and key[0] in branches and (not wanted or key[1] in wanted)
            ),
            key=lambda key: sim.stock_change[key],
        )
    else:
        keys = [(branch, number) for number in numbers if number in sim.article_product for branch in branches]
    stocks = []
    for branch, number in keys:
        amount, places = sim.stock.get((branch, number), (0, 0))
        stocks.append(
            {
                "branchNumber": branch,
                "articleNumber": number,
                "stockId": sim.stock_change.get((branch, number), 0),
                "amountFree": amount,
                "decimalPlacesFree": places,
                "amountReserved": 0,
                "decimalPlacesReserved": 0,
                "amountIncoming": 0,
                "decimalPlacesIncoming": 0,
                "isDayStockArticle": False,
            }
        )
    return "GetStockResponse", {"articleStocks": stocks}


def _set_stock(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    request = soap.one(body, "request") or {}
    branch = _int(soap.text(request, "branchNumber"), "branchNumber")
    number = _int(soap.text(request, "articleNumber"), "articleNumber")
    if branch not in BRANCHES:
        return "SetStockResponse", {"result": "SET-STOCK-RESULT-BRANCH-NOT-FOUND"}
    if number not in sim.article_product:
        return "SetStockResponse", {"result": "SET-STOCK-RESULT-ARTICLE-NOT-FOUND"}
    sim.stock[(branch, number)] = (
        _int(soap.text(request, "amount"), "amount"),
        _int(soap.text(request, "decimalPlaces") or 0, "decimalPlaces"),
    )
    stock_id = sim.stock_change[(branch, number)] = next(sim.stock_ids)
    return "SetStockResponse", {"result": "SET-STOCK-RESULT-OK", "stockId": stock_id}


def _get_branches(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    branches = [
        {"branchNumber": n, "branchName": name, "abbreviation": abbr, "countryCode": 528, "countryIso3": "NLD", "countryName": "Nederland"}
        for n, (name, abbr) in BRANCHES.items()
    ]
    return "getBranchesResponse", {"branches": {"branch": branches}}


def _get_vat_groups(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "getVatGroupListResponse", {"vatGroup": [{"vatCode": code, "vatPercentage": pct} for code, pct in VAT_GROUPS]}


def _get_article_groups(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    groups = [
        {"groupNumber": g["groupNumber"], "name": g["name"], "text": g["text"], "subGroupList": {}, "sortOrder": g["sortOrder"]}
        for g in sorted(sim.groups.values(), key=lambda g: g["groupNumber"])
    ]
    return "GetArticleGroupsResponse", {"articleGroupList": {"articleGroups": groups}}


def _new_article_group(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    request = soap.one(body, "request") or {}
    parent = _int(soap.text(request, "parentGroupNumber"), "parentGroupNumber")
    if parent != 0 and parent not in sim.groups:
        return "NewArticleGroupResponse", {"result": "NEW-ARTICLE-GROUP-RESULT-PARENT-NOTFOUND", "groupNumber": 0}
    number = next(sim._next_group)
    sim.groups[number] = {
        "groupNumber": number,
        "name": soap.text(request, "name") or "",
        "text": soap.text(request, "text") or "",
        "sortOrder": number,
    }
    return "NewArticleGroupResponse", {"result": "NEW-ARTICLE-GROUP-RESULT-OK", "groupNumber": number}


def _get_relations(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    request = soap.one(body, "request") or {}
    wanted = {_int(n, "relationNumbers") for n in soap.many(request, "relationNumbers")}
    if wanted:
        found = [r for n, r in sorted(sim.relations.items()) if n in wanted]
    else:
        since = _int(soap.text(request, "syncMarker") or 0, "syncMarker")
        limit = _int(soap.text(request, "syncMarkerLimit") or 1000, "syncMarkerLimit")
        found = sorted((r for r in sim.relations.values() if r["syncMarker"] > since), key=lambda r: r["syncMarker"])[:limit]
    return "GetRelationsResponse", {"relationList": {"relation": [sim.relation_xml(r) for r in found]}}


def _find_relation_v2(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    request = soap.one(body, "request") or {}
    email = (soap.text(soap.one(request, "relation"), "email") or "").strip().lower()
    for relation in sim.relations.values():
        if email and (relation.get("email") or "").lower() == email:
            return "FindRelationV2Response", {"result": "FIND-RELATION-RESULT-OK", "relation": sim.relation_xml(relation)}
    return "FindRelationV2Response", {"result": "FIND-RELATION-RESULT-NOT-FOUND"}


def _relation_fields(relation: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in relation.items() if k in mapping.RELATION_FIELDS and k not in mapping.READ_ONLY}


def _create_relation(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    relation = _relation_fields(soap.one(body, "relation") or {})
    number = soap.to_int(relation, "relationNumber")
    if number is not None and number in sim.relations:
        return "CreateRelationResponse", {
            "result": "CREATE-RELATION-RESULT-FAILED-RELATION-NUMBER-ALREADY-TAKEN",
            "relationNumber": 0,
            "errorMessage": f"relation number {number} is taken",
        }
    number = number or next(sim._next_relation)
    while number in sim.relations:
        number = next(sim._next_relation)
    marker = next(sim.markers)
    sim.relations[number] = {**relation, "relationNumber": number, "syncMarker": marker}
    return "CreateRelationResponse", {
        "result": "CREATE-RELATION-RESULT-OK",
        "relationNumber": number,
        "syncMarker": marker,
        "errorMessage": "",
    }


def _update_relation(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    relation = _relation_fields(soap.one(body, "relation") or {})
    number = soap.to_int(relation, "relationNumber")
    if number is None or number not in sim.relations:
        return "UpdateRelationResponse", {"result": "UPDATE-RELATION-RESULT-NOT-FOUND", "errorMessage": f"relation {number} not found"}
    marker = next(sim.markers)
    sim.relations[number] = {**relation, "relationNumber": number, "syncMarker": marker}
    return "UpdateRelationResponse", {"result": "UPDATE-RELATION-RESULT-OK", "errorMessage": "", "syncMarker": marker}


def _get_orders(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    request = soap.one(body, "request") or {}
    since = _int(soap.text(request, "syncMarker") or 0, "syncMarker")
    limit = _int(soap.text(request, "syncMarkerLimit") or 1000, "syncMarkerLimit")
    branches = {_int(b, "branchNumbers") for b in soap.many(request, "branchNumbers")}
    changed = sorted(
        (o for o in sim.orders.values() if o["syncMarker"] > since and (not branches or o.get("entryBranchNumber") in branches)),
        key=lambda o: o["syncMarker"],
    )[:limit]
    return "GetOrdersResponse", {"orderList": {"order": [sim.order_xml(o) for o in changed]}}


def _find_order(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ext = soap.text(body, "extOrderId") or ""
    for order in sim.orders.values():
        if ext and order.get("extOrderId") == ext:
            return "GetOrderResponse", {"result": "GET-ORDER-RESULT-OK", "order": sim.order_xml(order)}
    return "GetOrderResponse", {"result": "GET-ORDER-RESULT-NOT-FOUND"}


def _create_order_v3(sim: MplusSim, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    request = soap.one(body, "request") or {}
    key = soap.text(request, "idempotencyKey") or ""
    order = soap.one(request, "order") or {}
    empty_info = {"orderId": "", "orderString": ""}

    def failed(result: str, message: str) -> tuple[str, dict[str, Any]]:
        return "CreateOrderV3Response", {
            "idempotencyResult": "IDEMPOTENCY-RESULT-ORIGINAL-RESPONSE",
            "result": result,
            "errorMessage": message,
            "info": empty_info,
        }

    if not key:
        raise SoapVendorError(500, "Client", "Validation constraint violation: idempotencyKey is required")
    if key in sim.idempotent:
        stored = sim.orders[sim.idempotent[key].decode()]
        return "CreateOrderV3Response", {
            "idempotencyResult": "IDEMPOTENCY-RESULT-REPLAY-RESPONSE",
            "result": "CREATE-ORDER-RESULT-OK",
            "order": sim.order_xml(stored),
            "errorMessage": "",
            "info": {"orderId": stored["orderId"], "orderString": stored["orderId"]},
        }
    ext = soap.text(order, "extOrderId") or None
    if ext and any(o.get("extOrderId") == ext for o in sim.orders.values()):
        return failed("CREATE-ORDER-RESULT-EXT-ORDER-ID-ALREADY-EXISTS", f"extOrderId {ext} already exists")
    if soap.to_int(order, "employeeNumber") is None:
        return failed("CREATE-ORDER-RESULT-FAILED", "employeeNumber is required")
    lines = []
    for line in soap.many(soap.one(order, "lineList"), "line"):
        number = _int(soap.text(line, "articleNumber"), "articleNumber")
        if number not in sim.article_product:
            return failed("CREATE-ORDER-RESULT-FAILED", f"article {number} not found")
        data = dict(soap.one(line, "data") or {})
        product = sim.products[sim.article_product[number]]
        stored_article = next(a for a in product["articles"] if a["articleNumber"] == number)
        data.setdefault("price", stored_article.get("priceIncl", 0))
        data.setdefault("vatCode", stored_article.get("vatCode"))
        data.setdefault("vatPercentage", stored_article.get("vatPercentage"))
        lines.append(
            {
                "articleNumber": number,
                "text": soap.text(line, "text"),
                "data": {k: v for k, v in data.items() if k in mapping.LINEDATA_FIELDS},
            }
        )
    fields = {
        "employeeNumber": soap.to_int(order, "employeeNumber"),
        "entryBranchNumber": soap.to_int(order, "entryBranchNumber"),
        "relationNumber": soap.to_int(order, "relationNumber"),
        "reference": soap.text(order, "reference"),
        "vatMethod": soap.text(order, "vatMethod"),
        "fullyPaid": False,
    }
    stored = sim._store_order(fields, lines, ext=ext)
    sim.idempotent[key] = stored["orderId"].encode()
    return "CreateOrderV3Response", {
        "idempotencyResult": "IDEMPOTENCY-RESULT-ORIGINAL-RESPONSE",
        "result": "CREATE-ORDER-RESULT-OK",
        "order": sim.order_xml(stored),
        "errorMessage": "",
        "info": {"orderId": stored["orderId"], "orderString": stored["orderId"]},
    }


OPERATIONS = {
    "getApiVersion": _get_api_version,
    "getProducts": _get_products,
    "createProduct": _create_product,
    "updateProduct": _update_product,
    "getStock": _get_stock,
    "setStock": _set_stock,
    "getBranches": _get_branches,
    "getVatGroupList": _get_vat_groups,
    "getArticleGroups": _get_article_groups,
    "newArticleGroup": _new_article_group,
    "getRelations": _get_relations,
    "findRelationV2": _find_relation_v2,
    "createRelation": _create_relation,
    "updateRelation": _update_relation,
    "getOrders": _get_orders,
    "findOrder": _find_order,
    "createOrderV3": _create_order_v3,
}
"""The operations the simulator answers (the ones the connector uses)."""


def create_app(
    *, seed: int = 1, records: int = 0, relations: int | None = None, orders: int | None = None, wsdl: str | Path | None = None, **_: Any
) -> Starlette:
    """The simulator as an ASGI app (``app.state.sim`` is its :class:`MplusSim`): ``records``
    articles, ``relations`` relations (default a quarter of that) and ``orders`` till orders
    (default half); with ``wsdl``, every request is validated against the WSDL's schema."""
    sim = MplusSim(
        seed=seed,
        records=records,
        relations=records // 4 if relations is None else relations,
        orders=records // 2 if orders is None else orders,
        wsdl=wsdl,
    )
    app = Starlette(routes=[Route("/", sim.api(_soap), methods=["POST"])])
    app.state.sim = sim
    return app
