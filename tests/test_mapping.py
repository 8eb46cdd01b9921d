"""The data mapper: rules, transforms, value maps and their errors."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from apicenterd import Address, Customer, Order, OrderLine, RecordError
from apicenterd.mapping import BUILTIN_TRANSFORMS, Mapper, MapRule, split_street


def make_order(**kw) -> Order:
    data = dict(
        number="1001",
        status="paid",
        created_at=datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc),
        billing_address=Address(street="Kerkstraat 12-A", city=" utrecht ", country="NL"),
        customer=Customer(kind="person", name="jan jansen", email="j@example.com"),
        lines=(OrderLine(sku="a-1", name="A very long product name", unit_price=Decimal("1.005")), OrderLine(sku="b-2", unit_price=Decimal(2))),
        total=Decimal("3.01"),
        custom_fields={"source": "pos"},
    )
    data.update(kw)
    return Order(**data)


def mapper(*rules, transforms=None) -> Mapper:
    return Mapper("orders", Order, [MapRule.model_validate(r) for r in rules], transforms or {})


@pytest.mark.parametrize(
    "line, expected",
    [
        ("Kerkstraat 12", ("Kerkstraat", "12", "")),
        ("Kerkstraat 12-A", ("Kerkstraat", "12", "A")),
        ("Van Goghlaan 1a", ("Van Goghlaan", "1", "a")),
        ("2e Helmersstraat 14hs", ("2e Helmersstraat", "14", "hs")),
        ("Dorpsstraat 3 / 2", ("Dorpsstraat", "3", "2")),
        ("Laan 1940-1945 12", ("Laan 1940-1945", "12", "")),
        ("12 Rue de la Paix", ("Rue de la Paix", "12", "")),
        ("Hoofdweg", ("Hoofdweg", "", "")),
    ],
)
def test_split_street(line, expected):
    assert split_street(line) == expected


def test_split_street_and_house_number_from_one_line():
    m = mapper(
        {"field": "billing_address.house_number", "from": "billing_address.street", "transforms": ["house_number"]},
        {"field": "billing_address.house_number_suffix", "from": "billing_address.street", "transforms": ["house_number_suffix"]},
        {"field": "billing_address.street", "transforms": ["street_name"]},
        {"field": "billing_address.city", "transforms": ["trim", "title"]},
    )
    out = m.apply(make_order())
    assert (out.billing_address.street, out.billing_address.house_number, out.billing_address.house_number_suffix) == ("Kerkstraat", "12", "A")
    assert out.billing_address.city == "Utrecht"


def test_every_line_with_a_wildcard():
    out = mapper({"field": "lines.*.sku", "from": "lines.*.sku", "transforms": ["upper"]}).apply(make_order())
    assert [line.sku for line in out.lines] == ["A-1", "B-2"]


def test_constant_concat_with_field_reference_and_number_format():
    m = mapper(
        {"field": "note", "value": "from the till"},
        {"field": "reference", "from": "number", "transforms": [["concat", "/", "$customer.name"], "upper"]},
        {"field": "lines.*.unit_price", "from": "lines.*.unit_price", "transforms": [["number", 2]]},
    )
    out = m.apply(make_order())
    assert out.note == "from the till" and out.reference == "1001/JAN JANSEN"
    assert [line.unit_price for line in out.lines] == [Decimal("1.01"), Decimal("2.00")]


def test_value_map_and_a_value_it_lacks():
    m = mapper({"field": "custom_fields.channel", "from": "custom_fields.source", "map": {"pos": "Till"}})
    assert m.apply(make_order()).custom_fields["channel"] == "Till"
    with pytest.raises(RecordError) as exc:
        m.apply(make_order(custom_fields={"source": "web"}))
    assert "custom_fields.channel" in str(exc.value) and "'web'" in str(exc.value) and "pos" in str(exc.value)


def test_transform_failure_names_flow_field_and_value():
    m = mapper({"field": "total", "from": "note", "transforms": ["int"]})
    with pytest.raises(RecordError) as exc:
        m.apply(make_order(note="many"))
    assert "flow 'orders'" in str(exc.value) and "total" in str(exc.value) and "'many'" in str(exc.value)


def test_result_is_validated_against_the_canonical_model():
    m = mapper({"field": "currency", "value": "euro"})
    with pytest.raises(RecordError) as exc:
        m.apply(make_order())
    assert "currency" in str(exc.value)


def test_plugin_transforms_are_used_and_unknown_ones_reported():
    m = mapper({"field": "note", "from": "number", "transforms": ["reverse"]}, transforms={"reverse": lambda v: str(v)[::-1]})
    assert m.problems() == [] and m.apply(make_order()).note == "1001"[::-1]
    bad = mapper({"field": "note", "from": "nope.path", "transforms": ["reverse"]})
    problems = bad.problems()
    assert any("[0].from" in p and "nope" in p for p in problems)
    assert any("[0].transforms[0]: no transform 'reverse'" in p for p in problems)


def test_rule_validation():
    with pytest.raises(ValueError, match="not both"):
        MapRule.model_validate({"field": "note", "from": "number", "value": "x"})
    with pytest.raises(ValueError, match=r"must both use '\*' or neither"):
        MapRule.model_validate({"field": "lines.*.sku", "from": "number"})
    with pytest.raises(ValueError, match="bogus"):
        MapRule.model_validate({"field": "note", "bogus": 1})


@pytest.mark.parametrize(
    "name, args, value, expected",
    [
        ("trim", [], "  x ", "x"),
        ("lower", [], "AbC", "abc"),
        ("prefix", ["P-"], "1", "P-1"),
        ("suffix", ["-S"], "1", "1-S"),
        ("replace", ["-", ""], "12-34", "1234"),
        ("truncate", [3], "abcdef", "abc"),
        ("default", ["none"], "", "none"),
        ("default", ["none"], "x", "x"),
        ("date", ["%d-%m-%Y"], "2026-01-02T03:04:00Z", "02-01-2026"),
        ("digits", [], "+31 (0)6-123", "3106123"),
        ("int", [], "12,0", 12),
    ],
)
def test_builtin_transforms(name, args, value, expected):
    assert BUILTIN_TRANSFORMS[name](value, *args) == expected


# -- regressions found by tests/test_fuzz_core.py ------------------------------------------------


@pytest.mark.parametrize("field", ["lines.5.name", "lines.2", "custom_fields.source.x.y"])
def test_a_path_the_record_does_not_have_is_a_record_error(field):
    m = mapper({"field": field, "value": "x"})
    assert m.problems() == []  # the configuration cannot know how many lines an order has
    with pytest.raises(RecordError, match=rf"flow 'orders': mapping {field}: the record has no "):
        m.apply(make_order())


@pytest.mark.parametrize("part", ["field", "from"])
def test_a_list_of_records_without_star_or_index_is_a_configuration_error(part):
    # "lines.name" used to pass check and fail every order at run time as a record error
    rule = {"field": "note", "from": "lines.name"} if part == "from" else {"field": "lines.name", "value": "x"}
    assert mapper(rule).problems() == [
        f"[0].{part}: Order field 'lines' is a list: write 'lines.*.name' (every item) or an index ('lines.0.name')"
    ]
    assert mapper({"field": "lines.*.name", "from": "lines.*.sku"}, {"field": "lines.0.name", "value": "x"}).problems() == []


@pytest.mark.parametrize("value", ["1e999999", "NaN", "Infinity", "1" * 31])
def test_int_of_an_absurd_number_is_a_record_error_at_once(value):
    # int(Decimal("1e999999")) takes about a minute: refused before it is tried
    with pytest.raises(RecordError, match=r"transform 'int' failed .* at most 30 digits"):
        mapper({"field": "reference", "from": "note", "transforms": ["int"]}).apply(make_order(note=value))
    assert mapper({"field": "reference", "from": "note", "transforms": ["int", "string"]}).apply(make_order(note="1" * 30)).reference == "1" * 30


# -- transform arguments (issue 9) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "transform, problem",
    [
        (["truncate", -5], "[0].transforms[0]: transform 'truncate': length must be at least 1, got -5"),
        (["truncate", "-5"], "[0].transforms[0]: transform 'truncate': length must be at least 1, got -5"),
        (["truncate", "five"], "[0].transforms[0]: transform 'truncate': length must be a whole number, got 'five'"),
        (["number", 11], "[0].transforms[0]: transform 'number': places must be from 0 to 10, got 11"),
        ("prefix", "[0].transforms[0]: transform 'prefix' takes (p): missing a required argument: 'p'"),
        (["trim", 1], "[0].transforms[0]: transform 'trim' takes (): too many positional arguments"),
    ],
)
def test_transform_arguments_are_problems_of_the_configuration(transform, problem):
    assert mapper({"field": "note", "transforms": [transform]}).problems() == [problem]


def test_plugin_transform_arguments_are_counted():
    m = mapper({"field": "note", "transforms": [["wrap", "<"]]}, transforms={"wrap": lambda v, left, right: f"{left}{v}{right}"})
    assert m.problems() == ["[0].transforms[0]: transform 'wrap' takes (left, right): missing a required argument: 'right'"]
    assert mapper({"field": "note", "transforms": ["any"]}, transforms={"any": print}).problems() == []  # no signature: not checked


@pytest.mark.parametrize("length", ["-5", "0", "x"])
def test_truncate_length_from_a_field_is_checked_per_record(length):
    m = mapper({"field": "reference", "from": "number", "transforms": [["truncate", "$note"]]})
    assert m.problems() == []
    with pytest.raises(RecordError, match=r"transform 'truncate' failed on '1001': length must be"):
        m.apply(make_order(note=length))
    assert m.apply(make_order(note="2")).reference == "10"
