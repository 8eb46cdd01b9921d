"""Shared fixtures: the anyio backend, the vendor doc, an independent signer, and vendor-shaped payloads."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

SPECS = Path(os.environ.get("APICENTERD_API_SPECS") or Path(__file__).resolve().parents[3].parent / "shared" / "api-specs")
"""The vendor references: ``$APICENTERD_API_SPECS``, else ``shared/api-specs`` next to the repository."""
DOC = SPECS / "ccv_salespos" / "CCV-SHOP-API.md"

PUBLIC, PRIVATE = "pub-key", "priv-key"


@pytest.fixture
def anyio_backend() -> str:
    """Run async tests on asyncio."""
    return "asyncio"


@pytest.fixture(scope="session")
def doc_text() -> str:
    """The CCV Shop API reference the simulator and connector must match."""
    if not DOC.exists():
        missing = f"vendor reference {DOC} is not present (it lives next to the repository, in shared/; or set APICENTERD_API_SPECS)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true: {missing}; the conformance tests must run in CI, not skip")
        pytest.skip(missing)
    return DOC.read_text(encoding="utf-8")


def doc_hash(private: str, public: str, method: str, uri: str, body: bytes, x_date: str) -> str:
    """The doc's formula, written out independently of the plugin: hex(HMAC-SHA512(private, public|METHOD|uri|body|x-date))."""
    message = b"|".join([public.encode(), method.upper().encode(), uri.encode(), body, x_date.encode()])
    return hmac.new(private.encode(), message, hashlib.sha512).hexdigest()


class DocAuth(httpx.Auth):
    """A signer built from the doc alone, for talking to the simulator without the plugin's client."""

    requires_request_body = True

    def __init__(self, public: str, private: str, x_date: str = "2025-01-01T12:00:00Z"):
        self.public, self.private, self.x_date = public, private, x_date

    def auth_flow(self, request: httpx.Request):
        uri = request.url.raw_path.decode()
        request.headers.update(
            {
                "x-public": self.public,
                "x-date": self.x_date,
                "x-hash": doc_hash(self.private, self.public, request.method, uri, request.content, self.x_date),
            }
        )
        yield request


def signed_response(request: httpx.Request, status: int = 200, body: Any = None, *, private: str = PRIVATE,
                    public: str = PUBLIC, headers: dict[str, str] | None = None, text: str | None = None) -> httpx.Response:  # fmt: skip
    """A response signed as CCV signs them (for respx side effects)."""
    content = text.encode() if text is not None else (b"" if body is None else json.dumps(body).encode())
    x_date = "2025-01-01T12:00:00+00:00"
    sig = doc_hash(private, public, request.method, request.url.raw_path.decode(), content, x_date)
    return httpx.Response(status, content=content, headers={"x-date": x_date, "x-hash": sig, **(headers or {})})


# Shaped like the captured payloads the doc quotes (BON order and order row samples, SDK product props).
PRODUCT = {
    "href": "https://bonapp1.ccvshop.nl/api/rest/v1/products/123456/",
    "id": 123456,
    "is_active": True,
    "createdate": "2022-11-01T10:00:00Z",
    "modifydate": "2022-11-07T21:51:00Z",
    "productnumber": "KAAS-001",
    "eannumber": "8712345678906",
    "mpnnumber": "",
    "name": "Goudse kaas jong belegen",
    "shortdescription": "Jong belegen, 500 g",
    "description": "<p>Romige Goudse kaas.</p>",
    "vatrate": 9,
    "taxtariff": "low a",
    "price": 12.95,
    "discount": 1,
    "purchaseprice": 6.5,
    "unit": "stuk",
    "stockenabled": True,
    "stocktype": "product",
    "stock": 25,
    "stocklocation": "A-12",
    "weight": 0.5,
    "productmainphoto": "https://bonapp1.ccvshop.nl/Files/2/123456/photo.jpg",
    "brand": None,
}

ORDER = {
    "href": "https://bonapp1.ccvshop.nl/api/rest/v1/orders/339323562/",
    "id": 339323562,
    "ordernumber_prefix": None,
    "ordernumber": 1,
    "ordernumber_full": "1",
    "create_date": "2022-11-07T21:51:00Z",
    "status": 1,
    "is_completed": True,
    "paid": False,
    "paymethod_id": 3,
    "paymethod": "BankTransfer",
    "paymethod_label": "Vooraf overmaken",
    "taxes_included": True,
    "order_row_taxes_included": True,
    "shipping_taxes_included": True,
    "shipping_tax_percentage": 21,
    "total_orderrow_price": 585,
    "total_shipping": 6.95,
    "total_price": 591.95,
    "currency": "EUR",
    "total_tax": 102.73,
    "track_and_trace_code": "",
    "track_and_trace_carrier": None,
    "customer": {
        "billingaddress": {
            "gender": "male", "initials": "J.", "first_name": "Jan", "last_name": "Jansen", "full_name": "Jan Jansen",
            "company": "Kaashandel Jansen B.V.", "address_line_1": "", "address_line_2": "", "street": "Dorpsstraat",
            "housenumber": 12, "housenumber_suffix": "A", "zipcode": "1234 AB", "city": "Gouda", "province": "",
            "telephone": "0182123456", "fax": "", "mobile": "", "comment": "", "country": "Nederland", "country_code": "NL",
        },
        "deliveryaddress": {
            "gender": "", "initials": "", "full_name": "", "company": "", "address_line_1": "", "address_line_2": "",
            "street": "", "housenumber": "", "housenumber_suffix": "", "zipcode": "", "city": "", "province": "",
            "telephone": "", "mobile": "", "comment": "", "country": "", "country_code": "",
        },
        "email": "Jan@Example.NL", "email_invoice": "", "customertype": "b2b", "btw": "NL123456789B01",
        "kvk": "12345678", "reference": "PO-77", "iban": "", "bic": "",
    },
}  # fmt: skip

ORDER_ROW = {
    "href": "https://bonapp1.ccvshop.nl/api/rest/v1/orderrows/1/",
    "id": 1,
    "order_id": 339323562,
    "product_type": "product",
    "product_name": "Goudse kaas jong belegen",
    "product_number": "KAAS-001",
    "sub_sku_number": "",
    "sub_ean_number": "",
    "product_id": 123456,
    "count": 1,
    "price": 595,
    "discount": 10,
    "tax": 9,
    "selling_price": 585,
    "total_price": 585,
}


@pytest.fixture
def product() -> dict[str, Any]:
    """A fresh copy of the product fixture."""
    return copy.deepcopy(PRODUCT)


@pytest.fixture
def order() -> dict[str, Any]:
    """A fresh copy of the order fixture."""
    return copy.deepcopy(ORDER)


@pytest.fixture
def order_row() -> dict[str, Any]:
    """A fresh copy of the order row fixture."""
    return copy.deepcopy(ORDER_ROW)


@pytest.fixture
def sign() -> Any:
    """The signed-response builder (fixtures carry helpers: test modules cannot import conftest)."""
    return signed_response


@pytest.fixture
def doc_auth() -> type[DocAuth]:
    """The independent, doc-derived request signer."""
    return DocAuth


@pytest.fixture
def expected_hash() -> Any:
    """The doc's signature formula, independent of the plugin."""
    return doc_hash
