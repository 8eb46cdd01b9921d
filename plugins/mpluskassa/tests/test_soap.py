"""The SOAP layer: envelopes built in order, answers read, faults and hostile XML."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from apicenterd_mpluskassa import mapping, soap
from apicenterd_mpluskassa.simulator import fault_xml, response_xml
from lxml import etree


def test_envelope_is_document_literal_in_the_given_order():
    xml = soap.envelope("getProducts", {"request": {"articleNumbers": [1, 2], "pluNumbers": {}, "onlyActive": True, "syncMarker": 0}})
    root = etree.fromstring(xml)
    assert root.tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"
    (body,) = root
    (op,) = body
    assert op.tag == "{urn:mplusqapi}getProducts"
    (request,) = op
    assert [etree.QName(c).localname for c in request] == ["articleNumbers", "articleNumbers", "pluNumbers", "onlyActive", "syncMarker"]
    assert [c.text for c in request] == ["1", "2", None, "true", "0"]
    assert all(etree.QName(c).namespace == "urn:mplusqapi" for c in request.iter())


def test_none_is_left_out_and_decimals_have_no_exponent():
    xml = soap.envelope("x", {"a": None, "b": Decimal("1E+2"), "c": "t"})
    assert b"<ns:a" not in xml and b">100<" in xml and b">t<" in xml


def test_values_that_are_no_xml_type_are_refused():
    with pytest.raises(TypeError, match="float"):
        soap.envelope("x", {"a": 1.5})


def test_answer_read_with_repeated_elements_as_lists():
    xml = response_xml("GetProductsResponse", {"productList": {"product": [{"productNumber": 1}, {"productNumber": 2}]}})
    name, content = soap.read_envelope(xml)
    assert name == "GetProductsResponse"
    assert [soap.to_int(p, "productNumber") for p in soap.many(content["productList"], "product")] == [1, 2]
    one = response_xml("GetProductsResponse", {"productList": {"product": [{"productNumber": 7}]}})
    assert soap.many(soap.read_envelope(one)[1]["productList"], "product") == [{"productNumber": "7"}]
    empty = response_xml("GetProductsResponse", {"productList": {}})
    assert soap.many(soap.read_envelope(empty)[1]["productList"], "product") == []


def test_fault_becomes_soapfault_with_code_and_message():
    with pytest.raises(soap.SoapFault) as caught:
        soap.read_envelope(fault_xml("Client", "Validation constraint violation"))
    assert caught.value.code == "Client" and caught.value.message == "Validation constraint violation"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<html>proxy error</html>", "not a SOAP 1.1 envelope"),
        (b"not xml at all", "not XML"),
        (b'<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"/>', "no Body"),
        (b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>', "holds 0 elements"),
    ],
)
def test_what_is_not_an_envelope_is_a_clear_error(content, message):
    with pytest.raises(soap.SoapError, match=message):
        soap.read_envelope(content)


def test_entities_are_not_expanded():
    hostile = (
        b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><r>&x;</r></e:Body></e:Envelope>'
    )
    try:
        _, content = soap.read_envelope(hostile)
    except soap.SoapError:
        return
    assert "root:" not in str(content)


def test_mplus_datetime_round_trip_and_bad_values():
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    as_xml = {k: str(v).lower() for k, v in soap.mplus_datetime(when).items()}
    assert list(as_xml) == ["sec", "min", "hour", "day", "mon", "year", "isdst", "timezone"]
    assert soap.from_mplus_datetime(as_xml) == when
    with pytest.raises(ValueError, match="entryTimestamp"):
        soap.from_mplus_datetime({**as_xml, "mon": "13"}, "entryTimestamp")


def test_numbers_and_quantities():
    assert mapping.cents(Decimal("12.105"), "x") == 1211
    assert mapping.quantity(Decimal("1.50")) == (15, 1)
    assert mapping.quantity(Decimal("3")) == (3, 0)
    assert mapping.quantity(Decimal("1E+1")) == (10, 0)
    assert mapping.from_quantity({"q": "15", "p": "1"}, "q", "p") == Decimal("1.5")
    with pytest.raises(ValueError, match="quantity is not an integer"):
        soap.to_int({"quantity": "x"}, "quantity")


def test_a_gsoap_style_answer_with_other_prefixes_whitespace_and_nil_is_read():
    xml = b"""<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:mplus="urn:mplusqapi">
  <SOAP-ENV:Body>
    <mplus:GetRelationsResponse>
      <mplus:relationList>
        <mplus:relation>
          <mplus:relationNumber> 12 </mplus:relationNumber>
          <mplus:syncMarker>7</mplus:syncMarker>
          <mplus:name>Jansen</mplus:name>
          <mplus:email xsi:nil="true"/>
          <mplus:balance></mplus:balance>
        </mplus:relation>
      </mplus:relationList>
    </mplus:GetRelationsResponse>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>"""
    name, content = soap.read_envelope(xml)
    (relation,) = soap.many(content["relationList"], "relation")
    assert name == "GetRelationsResponse"
    assert soap.to_int(relation, "relationNumber") == 12 and soap.to_int(relation, "balance") is None
    customer = mapping.relation_to_customer(relation)
    assert customer.email is None and customer.customer_number == "12" and customer.kind == "person"
