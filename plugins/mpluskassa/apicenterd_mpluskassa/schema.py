"""The MplusQapi WSDL's XML schema, compiled offline with lxml, to validate SOAP bodies against.

Used by the tests and by the simulator when it is given the WSDL (the WSDL is the vendor's file:
it is read from where the operator or the test keeps it, never shipped or fetched). The SOAP
encoding namespace the WSDL imports is served from a minimal local schema of our own.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path

from lxml import etree

__all__ = ["load_schema", "SOAP_ENCODING", "body_errors"]

SOAP_ENCODING = "http://schemas.xmlsoap.org/soap/encoding/"
_XS = "http://www.w3.org/2001/XMLSchema"


def _local_encoding_schema() -> str:
    return str(resources.files(__package__).joinpath("data/soap-encoding-types.xsd"))


def load_schema(wsdl: str | Path) -> etree.XMLSchema:
    """The schema embedded in the WSDL at ``wsdl`` (its ``types``), compiled with no network:
    the WSDL's namespace declarations are carried onto the schema and the SOAP encoding import
    points at the local copy."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    document = etree.parse(str(wsdl), parser)
    embedded = document.find(f".//{{{_XS}}}schema")
    if embedded is None:
        raise ValueError(f"{wsdl}: no xsd:schema in the WSDL's types")
    nsmap = {k: v for k, v in {**document.getroot().nsmap, **embedded.nsmap}.items() if k}
    schema = etree.Element(embedded.tag, nsmap=nsmap, attrib=dict(embedded.attrib))
    for child in copy.deepcopy(embedded):
        schema.append(child)
    for imported in schema.findall(f"{{{_XS}}}import"):
        if imported.get("namespace") == SOAP_ENCODING:
            imported.set("schemaLocation", Path(_local_encoding_schema()).as_uri())
    return etree.XMLSchema(schema)


def body_errors(schema: etree.XMLSchema, element: etree._Element) -> list[str]:
    """Why ``element`` (a SOAP Body child) is not valid against ``schema``; empty when it is."""
    if schema.validate(element):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]
