"""A loopback CCV Shop REST API (products, orders, order rows, track & trace) with signing, paging, limits and errors.

The plumbing (request log, gate chain, fault switch ``sim.fail_next``, error rendering, id
sequences, offset paging) is the simulator toolkit's (:mod:`apicenterd.testing.sim`); this
module is CCV's rules: its resources, its HMAC signatures, its limits and its error shape.
"""

from __future__ import annotations

import collections
import collections.abc
import copy
import hashlib
import hmac
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from apicenterd.testing.sim import (
    ChangeClock,
    IntIds,
    LazyCollection,
    RateLimitGate,
    VendorError,
    VendorSim,
    Window,
    int_param,
    json_response,
    offset_page,
    read_json,
    seeded,
)

from .client import API_PREFIX, MAX_PAGE_SIZE, format_x_date, resource_of, signature

__all__ = ["DEMO_PUBLIC_KEY", "DEMO_PRIVATE_KEY", "SimError", "CCVShopSim", "LazyProducts", "create_app"]

DEMO_PUBLIC_KEY = "demo-public-key"
DEMO_PRIVATE_KEY = "demo-private-key-not-a-secret"
GET_LIMIT, WRITE_LIMIT = 150, 100
"""Requests per minute per resource and method (HIGH, 2022 docs)."""
DEFAULT_SIZE = 100
"""Page size when ``size`` is not given (UNKNOWN at CCV; a guess)."""
EPOCH = datetime(2025, 1, 6, 8, 0, tzinfo=timezone.utc)
"""Seeded records are dated from here, so a seed always gives the same data."""

PRODUCT_LINKS = (  # noqa: SIM905
    "productlabels productphotos productvariations productvideos producttaxtariffexceptions productattachments "
    "productkeywords productrelevant productattributesets productstaggeredprices producttocategories "
    "productreviews webshops attributecombinations producttopropertygroups"
).split()
ORDER_LINKS = "orderrows ordernotes ordermessages ordernotifications orderaffiliatenetworks orderlabels invoices".split()  # noqa: SIM905
TAXTARIFFS = ("normal", "low a", "low b", "extra low", "zero")

# PATCH /products/:id/ fields and their JSON types (JDK Internal/Resource/Products/Patch); POST takes the same.
NUMBER = (int, float)
PRODUCT_WRITE_FIELDS: dict[str, tuple[type, ...]] = {
    "productnumber": (str,), "active": (bool,), "eannumber": (str,), "mpnnumber": (str,), "name": (str,),
    "shortdescription": (str,), "description": (str,), "vatrate": NUMBER, "taxtariff": (str,), "price": NUMBER,
    "discount": NUMBER, "purchaseprice": NUMBER, "unit": (str,), "stockenabled": (bool,), "stocktype": (str,),
    "stock": NUMBER, "stocklocation": (str,), "ordering_without_stock": (str,), "weight": NUMBER,
    "brand_id": (int,), "condition_id": (int,), "color_id": (int,), "supplier_id": (int,), "package_id": (int,),
}  # fmt: skip
FLOAT_FIELDS = frozenset({"price", "discount", "stock", "weight", "vatrate", "purchaseprice"})
"""Product numbers CCV sends as floats (12 is written 12.0)."""
LINKED = {"brand": ("name",), "condition": ("name",), "color": ("name", "type", "hex"), "supplier": ("name",), "package": ()}
"""Objects a product links by ``<name>_id`` on write, and their keys besides href and id."""
PRODUCT_REQUIRED_ON_POST = ("name", "price")
"""Non-nullable in JDK's generated Post model (it also has discount and package_id; we default those)."""
ORDER_PATCH_FIELDS: dict[str, tuple[type, ...]] = {
    "status": (int,), "paid": (bool,), "track_and_trace_code": (str,), "track_and_trace_carrier": (str,),
    "mail": (bool,), "note": (str,), "deliver_date": (str,),
}  # fmt: skip
COMBINATION_WRITE_FIELDS: dict[str, tuple[type, ...]] = {"stock": NUMBER, "active": (bool,)}
"""PATCH /attributecombinations/:id/ fields (``stock``: JAVA client; ``active``: a key of the resource)."""
PRODUCT_EXPANDS = (  # noqa: SIM905
    "attributecombinations productattachments productattributesets productkeywords productphotos productrelevant "
    "productreviews productshippingcosts productstaggeredprices producttopropertygroups producttocategories "
    "productvariants productvideos producttaxtariffexceptions"
).split()
"""The product list's ``expand`` values (JDK Parameters/Products/All.php)."""
PRODUCT_ORDERBY = ("id", "name", "createdate", "modifydate")
ORDER_ORDERBY = ("id", "ordernumber", "create_date", "deliver_date")

NOUNS = (
    "Stroopwafels", "Goudse kaas", "Drop", "Hagelslag", "Pindakaas", "Koffiebonen", "Theedoek", "Fietsbel",
    "Klompen", "Tulpenbollen", "Speculaas", "Ontbijtkoek", "Appelstroop", "Kruidnoten", "Jenever", "Beschuit",
    "Rookworst", "Mosterd", "Thee", "Zeep", "Kaarsen", "Mok", "Sokken", "Paraplu",
)  # fmt: skip
ADJECTIVES = ("Biologische", "Hollandse", "Ambachtelijke", "Friese", "Zeeuwse", "Brabantse", "Oude", "Jonge", "Verse", "Luxe")
SIZES = ("250 g", "500 g", "1 kg", "per stuk", "6 stuks", "doos 12")
STREETS = ("Dorpsstraat", "Kerkstraat", "Molenweg", "Stationsplein", "Prinsengracht", "Lindelaan", "Havenkade")
CITIES = (("Amsterdam", "1015"), ("Utrecht", "3511"), ("Zwolle", "8011"), ("Groningen", "9711"), ("Breda", "4811"))
FIRST = ("Jan", "Sanne", "Pieter", "Anouk", "Daan", "Fleur", "Bram", "Lotte", "Joris", "Eva")
LAST = ("de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder", "Bos", "Vos")
PAYMETHODS = ((3, "BankTransfer", "Vooraf overmaken"), (1, "Ideal", "iDEAL"), (7, "Pin", "Pinnen"), (8, "Cash", "Contant"))
"""(paymethod_id, paymethod, paymethod_label); only BankTransfer / 3 / "Vooraf overmaken" is captured, the rest are GUESSES."""
UNKNOWN_SKU = "SP-GONE-1"
"""The SKU of the row ``unknown_sku=True`` seeds: no product has it."""
COMPANIES = ("Bakkerij Bos B.V.", "Kaashandel Smit", "De Koffiebranderij", None, None, None)


SimError = VendorError
"""A request the vendor would reject: ``SimError(status, code, message)`` becomes ``{status, code, developermessage}``."""


def ean13(body12: str) -> str:
    """``body12`` with its EAN-13 check digit appended."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body12))
    return body12 + str((10 - total % 10) % 10)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_fields(data: Any, allowed: dict[str, tuple[type, ...]], what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SimError(400, "400.10", f"{what}: the request body must be a JSON object")
    for key, value in data.items():
        if key not in allowed:
            raise SimError(400, "400.11", f"{what}: property '{key}' is not allowed")
        types = allowed[key]
        if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            raise SimError(400, "400.12", f"{what}: property '{key}' has the wrong type")
    return data


def _lazy_keys(first: int) -> Callable[[str, int], Any]:
    """The sort keys of an unchanged lazy product, without generating it (see ``_seed_lazy``)."""

    def key(field: str, pid: int) -> Any:
        if field == "id":
            return pid
        created = EPOCH + timedelta(seconds=7 * (pid - first))
        if field == "createdate":
            return _iso(created)
        if field == "modifydate":
            return _iso(created + timedelta(hours=1))
        raise KeyError(field)

    return key


LazyProducts = LazyCollection
"""Seeded products made when asked for (the toolkit's :class:`~apicenterd.testing.sim.LazyCollection`)."""


class CCVShopSim(VendorSim):
    """The simulator's state and behaviour; tests reach it as ``app.state.sim``."""

    def __init__(
        self,
        *,
        seed: int = 1,
        records: int = 0,
        public_key: str = DEMO_PUBLIC_KEY,
        private_key: str = DEMO_PRIVATE_KEY,
        rate_limit: int | None = None,
        total_limit: int = 0,
        period: float = 60.0,
        sign_responses: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        unknown_sku: bool = False,
        lazy: bool = False,
    ):
        super().__init__(log_size=1000)
        self.public_key, self.private_key = public_key, private_key
        self.lazy = lazy
        """Seeded products are generated when asked for (benchmarks with a million products); see LazyProducts."""
        self.sign_responses = sign_responses
        self.clock = clock
        get_limit, write_limit = (GET_LIMIT, WRITE_LIMIT) if rate_limit is None else (rate_limit, rate_limit)
        self.gates = [
            self.verify_request,
            RateLimitGate(get_limit, period, _per_resource, key=_method_resource, applies=lambda r: r.method == "GET"),
            RateLimitGate(write_limit, period, _per_resource, key=_method_resource, applies=lambda r: r.method != "GET"),
            RateLimitGate(total_limit, period, _total),  # 429.11's real limit is UNKNOWN: off unless asked
            self.fault_gate,
        ]
        self.products: dict[int, dict[str, Any]] | LazyProducts = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.orderrows: dict[int, dict[str, Any]] = {}
        self.attributecombinations: dict[int, dict[str, Any]] = {}
        """Variants: a product's attribute combinations, each with its own ``stock`` (CCV-SHOP-API.md §5)."""
        self.last_accept: str | None = None
        self._ids = {"product": IntIds(1000), "order": IntIds(339_300_000), "orderrow": IntIds(52_000_000), "webhook": IntIds(8000)}
        self._ids["combination"] = IntIds(70_000)
        self.webhooks: dict[int, dict[str, Any]] = {}
        """Webhook subscriptions (``/webhooks/``): ``{href, id, createdate, event, address, key, is_active}``."""
        self._changes = ChangeClock(clock, start=EPOCH, truncate=True)
        self.mails: list[tuple[int, dict[str, Any]]] = []
        """(order id, PATCH body) of every order PATCH that asked CCV to e-mail the customer."""
        self.notes: list[tuple[int, str]] = []
        if lazy:
            self._seed_lazy(seed, records)
        else:
            self._seed(random.Random(seed), records, unknown_sku)

    # -- state helpers used by tests ------------------------------------------------------

    def _next_id(self, kind: str) -> int:
        return self._ids[kind]()

    def _now(self) -> datetime:
        """Now, truncated to whole seconds as CCV dates are, and never before an earlier modification."""
        return self._changes.now()

    def add_product(self, *, when: datetime | None = None, **fields: Any) -> dict[str, Any]:
        """Create a product resource (all documented keys) from write fields; returns it."""
        pid = self._next_id("product")
        product = self._build_product(pid, _iso(when or self._now()), fields)
        self.products[pid] = product
        return product

    def _build_product(self, pid: int, stamp: str, fields: dict[str, Any]) -> dict[str, Any]:
        """The resource of product ``pid`` created at ``stamp``, with ``fields`` written."""
        href = f"{API_PREFIX}products/{pid}/"
        product: dict[str, Any] = {
            "href": href, "id": pid, "is_active": True, "createdate": stamp, "modifydate": stamp,
            "productnumber": "", "eannumber": "", "mpnnumber": "", "is_multishop_product": False, "multishop_href": None,
            "name": "", "shortdescription": "", "description": "", "vatrate": 21.0, "taxtariff": "normal",
            "tradecodesystem": None, "price": 0.0, "discount": 0.0, "purchaseprice": 0.0, "container_deposit_price": 0.0,
            "safety_deposit_price": 0.0,
            "productshippingcosts": {
                "costs": 0.0, "default_country": "NL", "quantity": 1, "href": f"{href}productshippingcosts/", "collection": None
            },
            "credit_points_custom": 0, "credit_points_calculated": 0, "unit": "stuk", "stockenabled": True,
            "stocktype": "product", "stock": 0.0, "stocklocation": "", "ordering_without_stock": "global_setting",
            "weight": 0.0, "maincategory": "", "subcategory": "", "brand": None, "condition": None, "color": None,
            "productmainphoto": "", "meta_description": "", "meta_keywords": "", "page_title": "", "no_index": False,
            "no_follow": False, "alias": "", "deeplink": "", "specs": "", "decimal_amount": 0, "amount_sold": 0,
            "minimal_order_amount": 1.0, "stock_delivery_number": 1, "stock_delivery_type": "days",
            "stock_delivery_standard": "", "show_in_template": True, "show_on_beginpage": False, "show_on_facebook": False,
            "show_order_button": "Y", "product_layout": 1, "photo_size": "", "hide_without_category": "NO_SEARCHRESULTS",
            "memo": "", "marktplaats_active": False, "marktplaats_status": "", "marktplaats_cpc": 0.0,
            "marktplaats_daily_budget": 0.0, "marktplaats_total_budget": 0.0, "marktplaats_category_id": None,
            "marktplaats_price_type": "", "google_shopping_category": "", "package": {"href": f"{API_PREFIX}packages/1/", "id": 1},
            "supplier": None, "is_included_for_export_feed": True, "fixed_staggered_prices": False, "is_visible": True,
            "can_be_ordered": True,
        }  # fmt: skip
        for link in PRODUCT_LINKS:
            product[link] = {"href": f"{href}{link}/", "collection": None}
        self._apply_product_fields(product, fields)
        return product

    def _apply_product_fields(self, product: dict[str, Any], fields: dict[str, Any]) -> None:
        for key, value in fields.items():
            if key == "active":
                product["is_active"] = value
            elif key.endswith("_id") and key[:-3] in LINKED:
                name = key[:-3]
                product[name] = None if value is None else {
                    "href": f"{API_PREFIX}{name}s/{value}/", "id": value, **dict.fromkeys(LINKED[name])
                }
            elif key in product:
                product[key] = float(value) if isinstance(value, int) and key in FLOAT_FIELDS else value
            else:
                raise KeyError(f"unknown product field {key!r}")
        if not product["stockenabled"]:
            product["stock"] = None

    def update_product(self, product_id: int, **fields: Any) -> dict[str, Any]:
        """Change a product's write fields (``active``, ``stock``, ...) and bump its ``modifydate``."""
        product = self.products[product_id]
        self._apply_product_fields(product, fields)
        product["modifydate"] = _iso(self._now())
        self.products[product_id] = product  # a lazy product is kept from its first change on
        return product

    def add_combination(
        self,
        product_id: int,
        values: list[tuple[str, str]],
        *,
        sku_number: str = "",
        product_number: str = "",
        ean_number: str = "",
        stock: float | None = 0.0,
    ) -> dict[str, Any]:
        """An attribute combination (a variant) of product ``product_id``: ``values`` are its
        (attribute, attribute value) pairs, e.g. ``[("Maat", "M"), ("Kleur", "Rood")]``."""
        _get(self.products, product_id, "product")
        cid = self._next_id("combination")
        combination = {
            "href": f"{API_PREFIX}attributecombinations/{cid}/", "id": cid, "note": "", "product_id": product_id,
            "stock": None if stock is None else float(stock), "netto_extra_price": 0.0,
            "ordering_without_stock": "global_setting", "product_number": product_number, "ean_number": ean_number,
            "sku_number": sku_number, "delivery_time": 1, "delivery_time_type": "days", "delivery_default_text": "",
            "active": True,
            "combination": [
                {
                    "attribute": {"href": f"{API_PREFIX}attributes/{n}/", "id": n, "name": attribute},
                    "attribute_value": {"href": f"{API_PREFIX}attributevalues/{n}/", "id": n, "name": value},
                    "extra_price": 0.0,
                }
                for n, (attribute, value) in enumerate(values, 1)
            ],
        }  # fmt: skip
        self.attributecombinations[cid] = combination
        return combination

    def combinations_of(self, product_id: int) -> list[dict[str, Any]]:
        """The attribute combinations of ``product_id``, in id order."""
        return [c for c in self.attributecombinations.values() if c["product_id"] == product_id]

    def add_order(
        self, lines: list[tuple[int, int]], *, status: int = 1, customer: dict[str, Any] | None = None,
        is_completed: bool = True, when: datetime | None = None, paid: bool | None = None,
        ordernumber: int | None = None, shipping: float | None = None, coupon: tuple[str, float] | None = None,
        paymethod: tuple[int, str, str] = (3, "BankTransfer", "Vooraf overmaken"),
        tracking: tuple[str, str] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Create an order with rows ``[(product_id, count), ...]``; returns the order resource.

        ``paid`` defaults to "not new and not waiting for payment"; ``shipping`` to 4.95 below 50 euro;
        ``coupon`` is ``(code, amount)``, an order-level discount; ``tracking`` is ``(code, carrier)``.
        """
        oid = self._next_id("order")
        if ordernumber is None and is_completed:
            ordernumber = max((o["ordernumber"] or 0 for o in self.orders.values()), default=0) + 1
        href = f"{API_PREFIX}orders/{oid}/"
        pay_id, pay_name, pay_label = paymethod
        order: dict[str, Any] = {
            "href": href, "id": oid, "ordernumber_prefix": None, "ordernumber": ordernumber if is_completed else None,
            "ordernumber_full": str(ordernumber) if is_completed else None, "invoicenumber": None, "transaction_id": None,
            "create_date": _iso(when or self._now()), "deliver_method": "shipping", "deliver_date": None,
            "take_out_window": {"start": None, "end": None}, "is_platform_sale": False, "orderedinlng": "nl",
            "status": status, "is_completed": is_completed, "basket_href": None, "checkout_href": None,
            "paid": status not in (1, 4) if paid is None else paid, "safety_deposit_returned": False,
            "paymethod_id": pay_id, "paymethod": pay_name,
            "paymethod_label": pay_label, "taxes_included": True, "order_row_taxes_included": True,
            "shipping_taxes_included": True, "shipping_tax_percentage": 21, "is_intra_community_order": False,
            "total_orderrow_price": 0.0, "total_shipping": 0.0, "total_discounts": 0.0, "total_price": 0.0,
            "currency": "EUR", "total_tax": 0.0, "total_weight": 0.0, "extra_payment_option": "",
            "extra_payment_option_price": 0.0, "extra_payment_option_no_sentprice": False,
            "extra_payment_option_pay_on_pickup": False, "extra_price": 0.0, "paymethod_costs": 0.0,
            "credit_point_discount": 0.0, "extra_costs": 0.0, "extra_costs_description": "",
            "track_and_trace_code": "", "track_and_trace_carrier": None, "track_and_trace_deeplink": "",
            "reservationnumber": None, "delivery_option": None,
            "user": {"id": "0", "discount_percentage": 0, "href": None},
            "discountcoupon": {"code": None, "discount": None, "type": None, "enddate": None, "onetimeuse": None,
                               "minimumprice": None, "givesfreeshipping": None},
            "customer": customer or self._customer(random.Random(oid)),
            "pickup_address": None, "packing_slip_deeplink": f"{href}packingslip",
        }  # fmt: skip
        for link in ORDER_LINKS:
            order[link] = {"href": f"{href}{link}/"}
        if coupon is not None:
            code, amount = coupon
            order["discountcoupon"].update(code=code, discount=amount, type="price", onetimeuse=False, givesfreeshipping=False)
            order["total_discounts"] = float(amount)
        if tracking is not None:
            self._set_tracking(order, *tracking)
        self.orders[oid] = order
        for pid, count in lines:
            self.add_row(oid, pid, count, recompute=False)
        self.recompute(oid, shipping=shipping)
        return order

    def add_row(
        self, order_id: int, product_id: int | None, count: int = 1, *, recompute: bool = True, **fields: Any
    ) -> dict[str, Any]:
        """Add a row to an order: for product ``product_id``, or (None) a row built from ``fields`` alone
        (``product_number``, ``product_name``, ``price``, ``tax``), e.g. for a SKU the shop no longer has."""
        product = self.products[product_id] if product_id is not None else {
            "name": fields.pop("product_name", "Vervallen artikel"), "productnumber": fields.pop("product_number", ""),
            "price": fields.pop("price", 9.95), "discount": fields.pop("discount", 0.0),
            "purchaseprice": 0.0, "vatrate": fields.pop("tax", 21.0), "unit": "stuk", "weight": 0.0, "stocklocation": "",
        }  # fmt: skip
        rid = self._next_id("orderrow")
        price, discount = product["price"], product["discount"]
        selling = round(price - discount, 2)
        row = {
            "href": f"{API_PREFIX}orderrows/{rid}/", "id": rid, "order_id": order_id, "product_type": "product",
            "product_name": product["name"], "product_name_google": product["name"],
            "product_number": product["productnumber"], "sub_product_number": "", "sub_sku_number": "",
            "sub_ean_number": "", "product_id": product_id,
            "product_href": f"{API_PREFIX}products/{product_id}" if product_id is not None else None,
            "count": count, "price": price, "product_purchase_price": product["purchaseprice"], "discount": discount,
            "custom_price": False, "tax": product["vatrate"], "unit": product["unit"], "weight": product["weight"],
            "memo": "", "package_id": 1, "package_name": "Kartonnen doos", "stock_location": product["stocklocation"],
            "supplier": "", "user_discount": 0.0, "original_price": price, "selling_price": selling,
            "price_without_discount": price, "price_without_discount_with_attributes": price,
            "total_price": round(selling * count, 2), "total_extra_option_price": 0.0, "price_with_attributes": selling,
            "total_price_with_attributes": round(selling * count, 2), "attributes": [], "uploads": [],
            "parent": {"href": f"{API_PREFIX}orders/{order_id}"},
        }  # fmt: skip
        for key, value in fields.items():
            if key not in row:
                raise KeyError(f"unknown order row field {key!r}")
            row[key] = value
        self.orderrows[rid] = row
        if recompute:
            self.recompute(order_id)
        return row

    def recompute(self, order_id: int, *, shipping: float | None = None) -> dict[str, Any]:
        """Recompute an order's totals from its rows: rows + shipping + payment costs − coupon discount."""
        order = self.orders[order_id]
        rows = [r for r in self.orderrows.values() if r["order_id"] == order_id]
        row_total = round(sum(r["total_price"] for r in rows), 2)
        if shipping is None:
            shipping = order["total_shipping"] if order["total_orderrow_price"] else (0.0 if row_total >= 50 else 4.95)
        discount = order["total_discounts"]
        total = round(row_total + shipping + order["paymethod_costs"] + order["extra_costs"] - discount, 2)
        row_tax = sum(r["total_price"] - r["total_price"] / (1 + r["tax"] / 100) for r in rows)
        ship_tax = shipping - shipping / 1.21
        share = (total - shipping) / row_total if row_total else 0  # the coupon lowers the rows' VAT pro rata
        order.update(
            total_orderrow_price=row_total, total_shipping=float(shipping), total_price=total,
            total_tax=round(row_tax * share + ship_tax, 2), total_weight=round(sum(r["weight"] * r["count"] for r in rows), 3),
        )  # fmt: skip
        return order

    def set_status(self, order_id: int, status: int, *, paid: bool | None = None) -> dict[str, Any]:
        """Move an order to ``status`` (and optionally set ``paid``), as the merchant would in the back office."""
        order = self.orders[order_id]
        order["status"] = status
        if paid is not None:
            order["paid"] = paid
        return order

    @staticmethod
    def _set_tracking(order: dict[str, Any], code: str, carrier: str | None) -> None:
        order["track_and_trace_code"] = code
        order["track_and_trace_carrier"] = carrier
        # read-only, derived by the server from code (and carrier); the real URL scheme is UNKNOWN
        order["track_and_trace_deeplink"] = f"https://tracking.example.nl/{code}" if code else ""

    @staticmethod
    def _customer(rng: random.Random) -> dict[str, Any]:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, zipcode = rng.choice(CITIES)
        company = rng.choice(COMPANIES)
        billing = {
            "gender": rng.choice(("male", "female")), "initials": first[0] + ".", "first_name": first, "last_name": last,
            "full_name": f"{first} {last}", "company": company or "", "address_line_1": "", "address_line_2": "",
            "street": rng.choice(STREETS), "housenumber": rng.randint(1, 250), "housenumber_suffix": rng.choice(("", "", "A", "bis")),
            "zipcode": f"{zipcode} {rng.choice('ABCDEGHJKL')}{rng.choice('ABCDEGHJKL')}", "city": city, "province": "",
            "telephone": f"06{rng.randint(10_000_000, 99_999_999)}", "fax": "", "mobile": "", "comment": "",
            "country": "Nederland", "country_code": "NL",
        }  # fmt: skip
        delivery = {k: "" for k in billing if k not in ("first_name", "last_name", "fax")}
        slug = last.lower().replace(" ", "")
        return {
            "billingaddress": billing, "deliveryaddress": delivery, "email": f"{first.lower()}@{slug}.example.nl",
            "email_invoice": "", "customertype": "b2b" if company else "b2c",
            "btw": f"NL{rng.randint(100_000_000, 999_999_999)}B01" if company else "",
            "kvk": str(rng.randint(10_000_000, 99_999_999)) if company else "",
            "reference": "", "iban": "", "bic": "",
        }  # fmt: skip

    def _seed_lazy(self, seed: int, records: int) -> None:
        """``records`` products generated on demand from ``seed`` and their id, created 7 s apart and
        modified an hour after (so ``modifydate`` order is id order), and a few orders."""
        first = self._ids["product"].last + 1

        def make(pid: int) -> dict[str, Any]:
            rng = seeded(seed, pid)
            created = EPOCH + timedelta(seconds=7 * (pid - first))
            rate = rng.choice((21.0, 21.0, 9.0))
            enabled = rng.random() > 0.1
            name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS).lower()} {rng.choice(SIZES)}"
            product = self._build_product(pid, _iso(created), {
                "productnumber": f"SP-{pid + 9000}", "eannumber": ean13(f"871{rng.randint(0, 999_999_999):09d}"),
                "name": name, "shortdescription": "Uit eigen winkel",
                "description": f"<h2>{name}</h2>" + "<p>Een Nederlands product, met zorg geselecteerd en vers verpakt.</p>" * 12,
                "vatrate": rate, "taxtariff": "normal" if rate == 21.0 else "low a",
                "price": rng.choice((2, 3, 4, 7, 9, 12, 15, 19, 24, 39)) + rng.choice((0.49, 0.95, 0.99)),
                "discount": rng.choice((0.0, 0.0, 0.0, 0.5, 1.0)), "purchaseprice": round(rng.uniform(0.8, 10.0), 2),
                "stockenabled": enabled, "stock": float(rng.randint(0, 120)) if enabled else None,
                "weight": round(rng.uniform(0.1, 2.5), 3),
            })  # fmt: skip
            product["modifydate"] = _iso(created + timedelta(hours=1))
            product["productmainphoto"] = f"https://myshop.ccvshop.nl/Files/2/{pid}/photo.jpg"
            return product

        self.products = LazyProducts(first, records, make, _lazy_keys(first), id_ordered=("id", "createdate", "modifydate"))
        self._ids["product"].last = first - 1 + records
        if records:
            self._changes.seen(EPOCH + timedelta(seconds=7 * (records - 1), hours=1))
        rng = random.Random(seed)
        ids = range(first, first + records)
        for n in range(min(records, 200)):
            lines = [(rng.choice(ids), rng.randint(1, 3)) for _ in range(rng.randint(1, 3))]
            self.add_order(lines, status=(1, 2, 5, 6, 7, 14, 4, 8, 13)[n % 9], customer=self._customer(rng),
                           when=EPOCH + timedelta(days=3, hours=n))  # fmt: skip

    def _seed(self, rng: random.Random, records: int, unknown_sku: bool = False) -> None:
        for i in range(records):
            rate = rng.choice((21.0, 21.0, 9.0))
            enabled = rng.random() > 0.1
            created = EPOCH + timedelta(minutes=i * 7)
            product = self.add_product(
                when=created,
                productnumber=f"SP-{10001 + i}",
                eannumber=ean13(f"871{rng.randint(0, 999_999_999):09d}"),
                name=f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS).lower()} {rng.choice(SIZES)}",
                shortdescription="Uit eigen winkel",
                description="<p>Een Nederlands product, met zorg geselecteerd.</p>",
                vatrate=rate,
                taxtariff="normal" if rate == 21.0 else "low a",
                price=rng.choice((2, 3, 4, 7, 9, 12, 15, 19, 24, 39)) + rng.choice((0.49, 0.95, 0.99)),
                discount=rng.choice((0.0, 0.0, 0.0, 0.5, 1.0)),
                purchaseprice=round(rng.uniform(0.8, 10.0), 2),
                stockenabled=enabled,
                stock=float(rng.randint(0, 120)) if enabled else None,
                weight=round(rng.uniform(0.1, 2.5), 3),
            )
            product["modifydate"] = _iso(created + timedelta(hours=rng.randint(0, 72)))
            product["productmainphoto"] = f"https://myshop.ccvshop.nl/Files/2/{product['id']}/photo.jpg"
            self._changes.seen(datetime.fromisoformat(product["modifydate"].replace("Z", "+00:00")))
        ids = sorted(self.products)
        customers: list[dict[str, Any]] = []
        for n in range(min(len(ids), max(3, records // 5)) if ids else 0):
            lines = [(rng.choice(ids), rng.randint(1, 3)) for _ in range(rng.randint(1, 3))]
            status = (1, 2, 5, 6, 7, 14, 4, 8, 13)[n % 9]
            if customers and n % 4 == 3:  # a returning customer, moved house since
                customer = copy.deepcopy(rng.choice(customers))
                customer["billingaddress"].update(street=rng.choice(STREETS), housenumber=rng.randint(1, 250))
            else:
                customer = self._customer(rng)
            customers.append(customer)
            self.add_order(
                lines, status=status, customer=customer, when=EPOCH + timedelta(days=3, hours=n),
                coupon=("WELKOM5", 5.0) if n % 5 == 2 else None,
                paymethod=PAYMETHODS[n % len(PAYMETHODS)],
                tracking=(f"3SCCV{1000 + n:08d}", "PostNL") if status in (5, 6, 7) else None,
            )  # fmt: skip
        if unknown_sku and ids:  # an order for an article the shop no longer has (tests of unknown SKUs)
            order = self.add_order([(ids[0], 1)], status=2, customer=self._customer(rng), when=EPOCH + timedelta(days=4))
            self.add_row(order["id"], None, 2, product_number=UNKNOWN_SKU, product_name="Uit het assortiment", price=4.5)

    # -- request handling -----------------------------------------------------------------

    def target(self, request: Request) -> str:
        """The request URI as sent and signed: the raw path and the query."""
        return _uri(request)

    async def verify_request(self, request: Request) -> None:
        """Check ``x-public``/``x-date``/``x-hash``; 401 in the vendor's error shape (the real status is UNKNOWN)."""
        self.last_accept = request.headers.get("accept")
        headers = request.headers
        public, x_date, x_hash = headers.get("x-public"), headers.get("x-date"), headers.get("x-hash")
        if not public or not x_date or not x_hash:
            raise SimError(401, "401.10", "Missing authentication headers x-public, x-date or x-hash")
        if public != self.public_key:
            raise SimError(401, "401.11", "Unknown public key")
        expected = signature(self.private_key, public, request.method, _uri(request), await request.body(), x_date)
        if not hmac.compare_digest(expected, x_hash):
            raise SimError(401, "401.12", "Hash does not match")

    def after(self, request: Request, response: Response) -> Response:
        """Add ``x-date`` and ``x-hash`` over the response body, as CCV does on 2xx."""
        if self.sign_responses and 200 <= response.status_code < 300:
            x_date = format_x_date(self.clock())
            response.headers["x-date"] = x_date
            body = bytes(response.body)
            response.headers["x-hash"] = signature(self.private_key, self.public_key, request.method, _uri(request), body, x_date)
        return response

    def error_response(self, exc: VendorError) -> Response:
        """CCV's error body: status, code, developermessage."""
        return json_response({"status": exc.status, "code": exc.code, "developermessage": exc.message}, exc.status, exc.headers)


def _uri(request: Request) -> str:
    scope = request.scope
    uri: str = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    if scope.get("query_string"):
        uri += "?" + scope["query_string"].decode("latin-1")
    return uri


def _method_resource(request: Request) -> str:
    return f"{request.method}:{resource_of(request.url.path)}"


# CCV documents no Retry-After header (UNKNOWN), so none is sent
def _per_resource(wait: float, gate: RateLimitGate) -> VendorError:
    return SimError(429, "429.10", "Each method in each resource has a limit of requests that can be made per minute")


def _total(wait: float, gate: RateLimitGate) -> VendorError:
    return SimError(429, "429.11", "The API has a total limit of requests that can be made per minute")


# -- rendering ------------------------------------------------------------------------------


def _absolute(value: Any, root: str) -> Any:
    """``value`` with every ``href``-ish string made absolute on ``root`` (as CCV's hrefs are)."""
    if isinstance(value, dict):
        return {
            k: (root + v if isinstance(v, str) and v.startswith(API_PREFIX) and k.endswith("href") else _absolute(v, root))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_absolute(v, root) for v in value]
    return value


def _root(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    return int_param(params, name, default, lambda message: SimError(400, "400.20", message))


def _orderby(params: dict[str, str], fields: tuple[str, ...]) -> tuple[str, bool]:
    orderby = params.get("orderby", "id")
    field, desc = (orderby[:-5], True) if orderby.endswith("_desc") else (orderby, False)
    if field not in fields:
        raise SimError(400, "400.21", f"Parameter 'orderby' must be one of {', '.join(fields)} (optionally _desc)")
    return field, desc


def _sorted(items: list[dict[str, Any]], params: dict[str, str], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    field, desc = _orderby(params, fields)
    # ties keep id order, like a database ORDER BY field, id
    return sorted(sorted(items, key=lambda i: i["id"]), key=lambda i: (i[field] is None, i[field]), reverse=desc)


def _collection(request: Request, items: Window[dict[str, Any]]) -> dict[str, Any]:
    params = dict(request.query_params)
    start = _int_param(params, "start", 0)
    size = min(max(_int_param(params, "size", DEFAULT_SIZE), 1), MAX_PAGE_SIZE)
    root = _root(request)
    page = offset_page(items, f"{root}{request.url.path}?{request.url.query}", start, size)
    return {
        "href": str(request.url),
        "start": start,
        "size": size,
        "first": page.first,
        "previous": page.previous,
        "next": page.next,
        "items": [_absolute(i, root) for i in page.items],
    }


def _filtered(items: list[dict[str, Any]], params: dict[str, str], filters: dict[str, Callable[[Any], Any]]) -> list[dict[str, Any]]:
    for name, convert in filters.items():
        if name in params:
            try:
                wanted = convert(params[name])
            except ValueError:
                raise SimError(400, "400.20", f"Parameter '{name}' has an invalid value") from None
            field = {"active": "is_active", "is_paid": "paid"}.get(name, name)
            items = [i for i in items if i.get(field) == wanted]
    return items


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(text)
    return text.lower() in ("true", "1")


def _get(store: collections.abc.Mapping[int, dict[str, Any]], item_id: int, kind: str) -> dict[str, Any]:
    if item_id not in store:
        raise SimError(404, "404.10", f"{kind} {item_id} not found")
    return store[item_id]


async def _json(request: Request) -> Any:
    return await read_json(request, lambda: SimError(400, "400.10", "Request body is not valid JSON"), decimals=False, empty=None)


async def products_list(sim: CCVShopSim, request: Request) -> Response:
    """``GET /products/`` (paged, sorted, filtered) and ``POST /products/`` (201 with the resource)."""
    if request.method == "POST":
        data = _check_fields(await _json(request), PRODUCT_WRITE_FIELDS, "products")
        missing = [f for f in PRODUCT_REQUIRED_ON_POST if data.get(f) is None]
        if missing:
            raise SimError(400, "400.13", f"products: required property '{missing[0]}' is missing")
        if data.get("productnumber") and any(p["productnumber"] == data["productnumber"] for p in sim.products.values()):
            raise SimError(500, "500.40", f"products: productnumber '{data['productnumber']}' already exists")
        product = sim.add_product(**data)
        return JSONResponse(_absolute(product, _root(request)), status_code=201)
    params = dict(request.query_params)
    filters: dict[str, Callable[[Any], Any]] = {"productnumber": str, "eannumber": str, "active": _bool}
    if isinstance(sim.products, LazyProducts) and not any(name in params for name in filters):
        field, desc = _orderby(params, PRODUCT_ORDERBY)
        return JSONResponse(_collection(request, sim.products.window(field, desc)))
    items = _filtered(list(sim.products.values()), params, filters)
    body = _collection(request, _sorted(items, params, PRODUCT_ORDERBY))
    expand = {e.strip() for e in params.get("expand", "").split(",") if e.strip()}
    unknown = expand - set(PRODUCT_EXPANDS)
    if unknown:
        raise SimError(400, "400.20", f"Parameter 'expand' has an invalid value: {sorted(unknown)[0]}")
    if "attributecombinations" in expand:  # the link object gets its collection (GUESS: the shape of an expansion)
        root = _root(request)
        for item in body["items"]:
            combos = [_absolute(c, root) for c in sim.combinations_of(item["id"])]
            href = item["attributecombinations"]["href"]
            page = {"href": href, "start": 0, "size": len(combos), "first": href, "previous": None, "next": None}
            item["attributecombinations"] = {"href": href, "collection": {**page, "items": combos}}
    return JSONResponse(body)


async def product_combinations(sim: CCVShopSim, request: Request) -> Response:
    """``GET /products/:id/attributecombinations/``: the product's variants (paged)."""
    pid = request.path_params["id"]
    _get(sim.products, pid, "product")
    return JSONResponse(_collection(request, sim.combinations_of(pid)))


async def combination_item(sim: CCVShopSim, request: Request) -> Response:
    """``GET`` and ``PATCH`` (204) ``/attributecombinations/:id/``; PATCH writes ``stock`` (the one field a
    client is known to write, CCV-SHOP-API.md §5) and ``active``."""
    cid = request.path_params["id"]
    combination = _get(sim.attributecombinations, cid, "attributecombination")
    if request.method == "PATCH":
        data = _check_fields(await _json(request), COMBINATION_WRITE_FIELDS, f"attributecombinations/{cid}")
        for key, value in data.items():
            combination[key] = float(value) if key == "stock" and value is not None else value
        return Response(status_code=204)
    return JSONResponse(_absolute(combination, _root(request)))


async def product_item(sim: CCVShopSim, request: Request) -> Response:
    """``GET``, ``PATCH`` (204) and ``DELETE`` (204) ``/products/:id/``."""
    pid = request.path_params["id"]
    product = _get(sim.products, pid, "product")
    if request.method == "PATCH":
        data = _check_fields(await _json(request), PRODUCT_WRITE_FIELDS, f"products/{pid}")
        sim.update_product(pid, **data)
        return Response(status_code=204)
    if request.method == "DELETE":
        del sim.products[pid]
        return Response(status_code=204)
    return JSONResponse(_absolute(product, _root(request)))


async def orders_list(sim: CCVShopSim, request: Request) -> Response:
    """``GET /orders/``: completed orders by default, filters ``status``, ``ordernumber``, ``is_paid``."""
    params = dict(request.query_params)
    completed = _bool(params["is_completed"]) if "is_completed" in params else True  # "Default: true"
    items = [o for o in sim.orders.values() if o["is_completed"] == completed]
    items = _filtered(items, params, {"status": int, "ordernumber": int, "is_paid": _bool})
    return JSONResponse(_collection(request, _sorted(items, params, ORDER_ORDERBY)))


async def order_item(sim: CCVShopSim, request: Request) -> Response:
    """``GET`` and ``PATCH`` (204: status, paid, track & trace) ``/orders/:id/``."""
    oid = request.path_params["id"]
    order = _get(sim.orders, oid, "order")
    if request.method == "PATCH":
        data = _check_fields(await _json(request), ORDER_PATCH_FIELDS, f"orders/{oid}")
        if "status" in data and data["status"] not in range(1, 15):
            raise SimError(400, "400.14", f"orders/{oid}: status must be 1 to 14")
        for key in ("status", "paid", "deliver_date"):
            if key in data:
                order[key] = data[key]
        if "track_and_trace_code" in data or "track_and_trace_carrier" in data:
            sim._set_tracking(
                order,
                data.get("track_and_trace_code", order["track_and_trace_code"]) or "",
                data.get("track_and_trace_carrier", order["track_and_trace_carrier"]),
            )
        if data.get("note"):
            sim.notes.append((oid, data["note"]))  # no order key holds it (ordernotes, maybe); kept for tests
        if data.get("mail"):
            sim.mails.append((oid, data))
        return Response(status_code=204)
    return JSONResponse(_absolute(order, _root(request)))


async def order_rows(sim: CCVShopSim, request: Request) -> Response:
    """``GET /orders/:id/orderrows/``."""
    oid = request.path_params["id"]
    _get(sim.orders, oid, "order")
    rows = sorted((r for r in sim.orderrows.values() if r["order_id"] == oid), key=lambda r: r["id"])
    return JSONResponse(_collection(request, rows))


async def orderrow_item(sim: CCVShopSim, request: Request) -> Response:
    """``GET /orderrows/:id/``."""
    return JSONResponse(_absolute(_get(sim.orderrows, request.path_params["id"], "orderrow"), _root(request)))


WEBHOOK_POST_FIELDS: dict[str, tuple[type, ...]] = {"event": (str,), "address": (str,), "is_active": (bool,)}
WEBHOOK_PATCH_FIELDS: dict[str, tuple[type, ...]] = {"address": (str,), "is_active": (bool,)}
"""``PATCH /webhooks/:id/`` allows only ``address`` and ``is_active`` (CCV-SHOP-API.md §8)."""


async def webhooks_list(sim: CCVShopSim, request: Request) -> Response:
    """``GET /webhooks/`` (paged) and ``POST /webhooks/`` (201 with the subscription and its ``key``)."""
    if request.method == "POST":
        data = _check_fields(await _json(request), WEBHOOK_POST_FIELDS, "webhooks")
        for field in ("event", "address"):
            if not data.get(field):
                raise SimError(400, "400.13", f"webhooks: required property '{field}' is missing")
        wid = sim._next_id("webhook")
        item = {
            "href": f"{API_PREFIX}webhooks/{wid}/",
            "id": wid,
            "createdate": _iso(sim._now()),
            "event": data["event"],
            "address": data["address"],
            "key": hashlib.sha256(f"{sim.private_key}:{wid}".encode()).hexdigest()[:32],
            "is_active": data.get("is_active", True),
        }
        sim.webhooks[wid] = item
        return JSONResponse(_absolute(item, _root(request)), status_code=201)
    items = sorted(sim.webhooks.values(), key=lambda w: w["id"])
    return JSONResponse(_collection(request, items))


async def webhook_item(sim: CCVShopSim, request: Request) -> Response:
    """``GET``, ``PATCH`` (204; ``address``, ``is_active``) and ``DELETE`` (204) ``/webhooks/:id/``."""
    wid = request.path_params["id"]
    item = _get(sim.webhooks, wid, "webhook")
    if request.method == "PATCH":
        item.update(_check_fields(await _json(request), WEBHOOK_PATCH_FIELDS, f"webhooks/{wid}"))
        return Response(status_code=204)
    if request.method == "DELETE":
        del sim.webhooks[wid]
        return Response(status_code=204)
    return JSONResponse(_absolute(item, _root(request)))


Handler = Callable[[CCVShopSim, Request], Awaitable[Response]]


def _routes() -> list[Route]:
    spec: list[tuple[str, Handler, list[str]]] = [
        ("products", products_list, ["GET", "POST"]),
        ("products/{id:int}", product_item, ["GET", "PATCH", "DELETE"]),
        ("products/{id:int}/attributecombinations", product_combinations, ["GET"]),
        ("attributecombinations/{id:int}", combination_item, ["GET", "PATCH"]),
        ("orders", orders_list, ["GET"]),
        ("orders/{id:int}", order_item, ["GET", "PATCH"]),
        ("orders/{id:int}/orderrows", order_rows, ["GET"]),
        ("orderrows/{id:int}", orderrow_item, ["GET"]),
        ("webhooks", webhooks_list, ["GET", "POST"]),
        ("webhooks/{id:int}", webhook_item, ["GET", "PATCH", "DELETE"]),
    ]
    routes = []
    for path, handler, methods in spec:
        endpoint = CCVShopSim.api(handler)
        for suffix in ("/", ""):  # a trailing slash is optional at CCV
            routes.append(Route(f"{API_PREFIX}{path}{suffix}", endpoint, methods=methods))
    return routes


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    code, message = {404: ("404.20", "Invalid resource name"), 405: ("405.10", "Method not allowed")}.get(
        status, (f"{status}.00", "Error")
    )
    return json_response({"status": status, "code": code, "developermessage": message}, status)


def create_app(*, seed: int = 1, records: int = 0, **options: Any) -> Starlette:
    """The simulator app; options go to :class:`CCVShopSim` (``rate_limit=0`` turns the limits off)."""
    app = Starlette(routes=_routes(), exception_handlers={HTTPException: _http_error})
    app.state.sim = CCVShopSim(seed=seed, records=records, **options)
    return app
