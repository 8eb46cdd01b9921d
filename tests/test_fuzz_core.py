"""Property tests of the core's record-level steps: whatever a flow's rules, options and the
records look like, each step gives a record or a RecordError; header and status parsing give
only what their docstrings promise."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import httpx
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from apicenterd import (
    Address,
    AuthError,
    ConnectorError,
    Customer,
    FatalError,
    Invoice,
    Order,
    OrderLine,
    Product,
    RateLimited,
    RecordError,
    RetryableError,
    error_for_status,
    json_body,
    parse_retry_after,
)
from apicenterd.errors import RETRY_AFTER_CAP
from apicenterd.filters import Filter
from apicenterd.flows import OrderOptions, Skip
from apicenterd.mapping import BUILTIN_TRANSFORMS, Mapper, MapRule
from apicenterd.orders import apply_maps, missing_product, order_to_invoice, select

FUZZ = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

ODD_STRINGS = st.sampled_from(
    ["", " ", "NaN", "nan", "sNaN", "inf", "-Infinity", "1e999999", "-1e999999", "12,95", "0x1F", "１２", "2024-13-45",
     "2024-05-01T10:00:00Z", "2024-05-01", "Kerkstraat 12-A", "12 rue de la Paix", "€ 12.95", "\x00", "é" * 200, "x" * 2000]
)  # fmt: skip
NUMBERISH = st.sampled_from(["NaN", "-nan", "sNaN", "Infinity", "1e999999", "1E+999999999", "0.1", "-3"])
"""Strings that Decimal() reads as numbers, finite or not: filters and transforms compare and convert them."""
TEXT = st.one_of(st.text(max_size=30), ODD_STRINGS, NUMBERISH)
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30), st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=False), TEXT,
)  # fmt: skip
VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=5)
AMOUNT = st.one_of(st.decimals(allow_nan=False, allow_infinity=False), st.decimals(min_value=-1000, max_value=1000, places=2))
RATE = st.none() | st.sampled_from([Decimal(0), Decimal(9), Decimal(21), Decimal("5.5"), Decimal("21.000")]) | AMOUNT
COUNTRY = st.none() | st.sampled_from(["NL", "BE", "DE"])

ADDRESSES = st.builds(Address, street=TEXT, house_number=st.text(max_size=6), postcode=st.text(max_size=8), city=TEXT, country=COUNTRY)
CUSTOMERS = st.builds(
    Customer, kind=st.sampled_from(["company", "person"]), name=TEXT, email=st.none() | TEXT,
    billing_address=ADDRESSES, shipping_address=st.none() | ADDRESSES,
)  # fmt: skip
LINES = st.builds(
    OrderLine, kind=st.sampled_from(["product", "shipping", "discount", "fee"]), sku=st.none() | st.text(min_size=1, max_size=10),
    name=TEXT, quantity=AMOUNT, unit_price=AMOUNT, prices_include_tax=st.booleans(), discount=AMOUNT, tax_rate=RATE,
    total=st.none() | AMOUNT,
)  # fmt: skip
ORDERS = st.builds(
    Order, number=st.text(min_size=1, max_size=20), status=st.sampled_from(["new", "paid", "sent", "cancelled", ""]),
    created_at=st.datetimes(timezones=st.just(timezone.utc)), currency=st.sampled_from(["EUR", "USD"]),
    customer=st.none() | CUSTOMERS, billing_address=ADDRESSES, shipping_address=st.none() | ADDRESSES,
    lines=st.lists(LINES, max_size=4).map(tuple), total=AMOUNT, total_tax=st.none() | AMOUNT, paid=st.booleans(),
    payment_method=st.none() | st.sampled_from(["ideal", "cash", "BankTransfer"]), payment_terms=st.none() | st.sampled_from(["14", "30"]),
    reference=st.none() | TEXT, note=st.none() | TEXT, custom_fields=st.dictionaries(st.sampled_from(["source", "channel", "n"]), SCALAR, max_size=2),
)  # fmt: skip

# -- the mapper: random rules, as the configuration would have accepted them ----------------

PATHS = st.sampled_from(
    ["number", "status", "reference", "note", "payment_terms", "payment_method", "total", "total_tax", "paid", "currency",
     "created_at", "customer.name", "customer.email", "customer.kind", "billing_address.street", "billing_address.house_number",
     "billing_address.country", "shipping_address.city", "custom_fields.source", "custom_fields.channel", "custom_fields.a.b",
     "lines.0.name", "lines.0.sku", "lines.1.unit_price", "lines.0", "lines", "lines.name", "customer", "billing_address.0",
     "custom_fields.source.x.y", "cost_centre"]
)  # fmt: skip
STAR_PATHS = st.sampled_from(["lines.*.name", "lines.*.sku", "lines.*.unit_price", "lines.*.quantity", "lines.*.tax_code", "lines.*.account"])
ARGUMENT = st.one_of(SCALAR, st.sampled_from(["$number", "$customer.name", "$lines.0.sku", "$missing", "$total"]))
TRANSFORM = st.one_of(
    st.sampled_from(sorted(BUILTIN_TRANSFORMS)),
    st.tuples(st.sampled_from(sorted(BUILTIN_TRANSFORMS)), st.lists(ARGUMENT, max_size=3)).map(lambda t: [t[0], *t[1]]),
)


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    """One ``[[flows.x.map]]`` table: a field, a source or a constant, transforms, maybe a value map."""
    star = draw(st.booleans())
    rule: dict[str, Any] = {"field": draw(STAR_PATHS if star else PATHS)}
    source = draw(st.sampled_from(["from", "value", "self"]))
    if source == "from":
        rule["from"] = draw(STAR_PATHS if star else PATHS)
    elif source == "value" and not star:
        rule["value"] = draw(SCALAR.filter(lambda v: v is not None))
    rule["transforms"] = draw(st.just([]) | st.lists(TRANSFORM, max_size=3))
    if draw(st.integers(0, 3)) == 0:  # a value map mostly misses: keep it rare, or little gets past it
        rule["map"] = draw(st.dictionaries(st.sampled_from(["paid", "new", "ideal", "NL", "None", "1001"]), SCALAR, max_size=3))
    return rule


@FUZZ
@given(ORDERS, st.lists(rules(), min_size=1, max_size=3))
def test_any_accepted_rules_map_an_order_to_an_order_or_a_record_error(order, tables):
    try:
        parsed = [MapRule.model_validate(table) for table in tables]
    except ValidationError:
        assume(False)  # the configuration rejects it; no run ever sees it
    mapper = Mapper("orders", Order, parsed, {})
    assume(not mapper.problems())
    try:
        result = mapper.apply(order)
    except RecordError as exc:
        assert str(exc).startswith("flow 'orders': ")
        return
    assert isinstance(result, Order)


# -- filters ----------------------------------------------------------------------------------

FILTERS = st.builds(
    dict, field=st.sampled_from(["custom_fields.n", "reference", "total", "lines.0.unit_price", "lines", "customer.name"]) | PATHS, op=st.sampled_from(["eq", "ne", "in", "not_in", "gt", "ge", "lt", "le", "contains", "matches", "exists"]),
    value=st.one_of(SCALAR, st.lists(SCALAR, max_size=3), NUMBERISH, st.sampled_from(["^W", "["])),
)  # fmt: skip


@FUZZ
@given(ORDERS, FILTERS, st.one_of(SCALAR, NUMBERISH), st.none() | NUMBERISH)
def test_any_accepted_filter_answers_true_or_false(order, table, n, reference):
    order = order.model_copy(update={"custom_fields": {**order.custom_fields, "n": n}, "reference": reference or order.reference})
    try:
        condition = Filter.model_validate(table)
    except ValidationError:
        assume(False)
    assert condition.matches(order) in (True, False)
    assert condition.describe()


# -- the order process -------------------------------------------------------------------------

CODES = st.dictionaries(st.sampled_from(["ideal", "cash", "BankTransfer", "14", "30"]), st.text(min_size=1, max_size=4), max_size=3)
TAX_TABLE = st.dictionaries(st.sampled_from(["21", "9", "0", "5.5", "none", "default"]), st.text(min_size=1, max_size=4), max_size=3)
OPTIONS = st.builds(
    dict, statuses=st.lists(st.sampled_from(["new", "paid", "sent"]), max_size=2), require_paid=st.booleans(),
    document=st.sampled_from(["quote", "order", "invoice_draft", "invoice"]), payment_methods=st.none() | CODES,
    payment_terms=st.none() | CODES, tax_codes=st.dictionaries(st.sampled_from(["NL", "BE", "default"]), TAX_TABLE, max_size=2),
    revenue_accounts=st.dictionaries(st.sampled_from(["NL", "", "default"]), st.text(min_size=1, max_size=4), max_size=2),
    cost_centre=st.none() | st.text(max_size=4), shipping_sku=st.none() | st.text(max_size=4), discount_sku=st.none() | st.text(max_size=4),
    fee_sku=st.none() | st.text(max_size=4), custom_fields=st.dictionaries(st.text(max_size=5), SCALAR, max_size=2),
)  # fmt: skip


@FUZZ
@given(st.one_of(ORDERS, ORDERS.map(order_to_invoice)), OPTIONS, st.dictionaries(st.text(max_size=5), SCALAR, max_size=2))
def test_any_options_select_and_map_an_order_to_an_order_or_a_record_error(order, options, target_fields):
    options = OrderOptions.model_validate(options)
    selected = select(order, options)
    if isinstance(selected, Skip):
        return
    try:
        mapped = apply_maps(selected, options, "orders", target_fields)
    except RecordError:
        return
    assert isinstance(mapped, Order) and mapped.document == options.document
    assert isinstance(order_to_invoice(mapped), Invoice)
    for line in mapped.lines:
        if line.sku:
            assert isinstance(missing_product(line, mapped), Product)


# -- HTTP: Retry-After, status → error, JSON bodies --------------------------------------------

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)
RETRY_AFTER = st.one_of(
    st.text(max_size=40),
    st.from_regex(r"\A\s*-?\d{1,12}(\.\d{0,6})?\s*\Z"),
    st.sampled_from(["Wed, 01 Jan 2025 12:00:30 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 01 Jan 0001 00:00:00 GMT",
                     "Wed, 01 Jan 2025 12:00:30 +9999", "Wed, 01 Jan 2025 12:00:30", "Wed, 32 Jan 2025 25:61:61 GMT",
                     "1e400", "-1e400", "nan", "inf", "-inf", "0x10", "1_000", "Tue, 2025", "01 Jan 2025 12:00:30 -0000"]),
    ODD_STRINGS,
)


@FUZZ
@given(st.none() | RETRY_AFTER)
def test_any_retry_after_is_none_or_seconds_within_the_cap(value):
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or (isinstance(seconds, float) and 0 <= seconds <= RETRY_AFTER_CAP)


@FUZZ
@given(st.integers(min_value=100, max_value=599), st.none() | RETRY_AFTER.filter(lambda s: s.isascii() and "\x00" not in s), st.none() | st.text(max_size=8))
def test_any_status_is_the_documented_error_class(status, retry_after, code):
    request = httpx.Request("GET", "https://vendor.test/v1/things")
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    error = error_for_status(httpx.Response(status, headers=headers, request=request), "things", vendor_code=code)
    expected = (
        RateLimited if status == 429
        else AuthError if status in (401, 403)
        else RetryableError if status in (408, 425) or status >= 500
        else RecordError if 400 <= status < 500
        else FatalError
    )  # fmt: skip
    assert type(error) is expected and isinstance(error, ConnectorError)
    assert (error.status, error.vendor_code) == (status, code) and f"HTTP {status}" in str(error)
    if isinstance(error, RateLimited):
        assert error.retry_after is None or 0 <= error.retry_after <= RETRY_AFTER_CAP


@FUZZ
@given(st.one_of(st.binary(max_size=60), VALUE.map(lambda v: __import__("json").dumps(v, default=str).encode())), st.booleans())
def test_any_body_is_json_or_a_fatal_error(content, exact):
    response = httpx.Response(200, content=content, request=httpx.Request("GET", "https://vendor.test/x"))
    try:
        body = json_body(response, "things", parse_float=Decimal if exact else None)
    except FatalError as exc:
        assert str(exc).startswith("things: response is not JSON")
        return
    assert body is None or isinstance(body, (dict, list, str, int, float, Decimal, bool))


# -- the configuration: any document the TOML parser accepts loads or is a ConfigError -----------


def _toml(value: Any) -> str:
    """``value`` as a TOML inline value (None is left out by the caller)."""
    import json
    import math

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        value = float(value) if not value.is_snan() else math.nan
    if isinstance(value, float):
        return ("-inf" if value < 0 else "inf") if math.isinf(value) else "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml(str(k))} = {_toml(v)}" for k, v in value.items() if v is not None) + "}"
    return value.isoformat()  # dates and times


def _put(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    """Set ``doc[path...] = value`` where the path still fits the document; else leave it."""
    node: Any = doc
    for key in path[:-1]:
        if isinstance(node, dict) and isinstance(key, str):
            node = node.setdefault(key, {})
        elif isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        else:
            return
    if isinstance(node, dict) and isinstance(path[-1], str):
        node[path[-1]] = value


CONFIG_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), ODD_STRINGS, st.dates(),
    st.sampled_from(["1m", "1s", "0.5s", "1e-7", "400d", "0 0 31 2 *", "*/5 * * * *", "http://h", "https://", "not a url", "ftp://x"]),
    st.sampled_from([{"file": "/dev/zero"}, {"file": "/"}, {"file": "/nonexistent/key"}, {"env": "APICENTERD_FUZZ_UNSET"},
                     {"env": ""}, {"credential": "x"}, {"file": 1}]),
)  # fmt: skip
CONFIG_VALUE = st.recursive(
    CONFIG_SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6
)
CONFIG_PATHS = st.sampled_from(
    [("daemon", "shutdown_timeout"), ("daemon", "circuit_failure_threshold"), ("daemon", "circuit_recovery_seconds"),
     ("daemon", "metrics_address"), ("daemon", "log_level"), ("state", "audit_retention_days"), ("state", "path"),
     ("state", "dead_letter_retention_days"), ("alerts", "timeout"), ("alerts", "webhook_url"), ("alerts", "email"),
     ("connections", "src", "timeout"), ("connections", "src", "base_url"), ("connections", "dst", "connector"),
     ("connections", "dst", "extra"), ("flows", "f", "interval"), ("flows", "f", "cron"), ("flows", "f", "entity"),
     ("flows", "f", "map"), ("flows", "f", "options"), ("flows", "f", "filters"), ("flows", "f", "enabled"),
     ("flows", "f", "create_only_fields"), ("flows", "f", "target_settings"), ("flows", "f", "source"), ("flows",),
     ("_env_file",), ("flows", "f", "map", 0, "transforms")]
)  # fmt: skip
MAP_TRANSFORMS = st.lists(st.one_of(TRANSFORM, st.sampled_from([["truncate", -5], ["truncate", 0], ["number", 99], ["truncate"]])), max_size=3)


@FUZZ
@given(st.lists(st.tuples(CONFIG_PATHS, st.one_of(CONFIG_VALUE, MAP_TRANSFORMS)), min_size=1, max_size=4))
def test_any_toml_document_loads_or_is_a_config_error(changes):
    import tempfile
    from pathlib import Path

    import fakes

    from apicenterd import ConfigError
    from apicenterd.config import load
    from apicenterd.registry import load_registry

    doc: dict[str, Any] = {
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": "memtarget"}},
        "flows": {"f": {"source": "src", "target": "dst", "entity": "products", "interval": "1m", "map": [{"field": "name"}]}},
    }
    for path, value in changes:
        _put(doc, path, value)
    text = "\n".join(f"{_toml(k)} = {_toml(v)}" for k, v in doc.items() if v is not None) + "\n"
    registry = load_registry([("fakes", fakes)], entry_points=False)
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "apicenterd.toml"
        file.write_text(text, encoding="utf-8")
        try:
            resolved = load(file, registry)
        except ConfigError as exc:
            assert exc.problems and all(isinstance(p, str) and ": " in p for p in exc.problems)
            return
    assert set(resolved.flows) <= {"f"}
    for flow in resolved.flows.values():  # what loaded is sane
        assert flow.schedule.cron or 1 <= flow.schedule.interval <= 365 * 86400


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("[]{}=\"'., \n#abfilnstu0123456789-+:eE_")), max_size=200))
def test_any_text_reads_or_is_a_config_error(text):
    import tempfile
    from pathlib import Path

    from apicenterd import ConfigError
    from apicenterd.config import read_config

    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "apicenterd.toml"
        file.write_text(text, encoding="utf-8")
        try:
            read_config(file)
        except ConfigError as exc:
            assert exc.problems
