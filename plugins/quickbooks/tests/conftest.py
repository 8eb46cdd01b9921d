"""Shared fixtures of the QuickBooks connector tests: the simulator, its settings, the spec files."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from apicenterd_quickbooks import QuickBooksConnector

SPEC_DIR = Path(os.environ.get("APICENTERD_API_SPECS") or Path(__file__).resolve().parents[3] / ".." / "shared" / "api-specs")
QBO = SPEC_DIR / "quickbooks"
NS = "{http://schema.intuit.com/finance/v3}"
# elements that are lists in QuickBooks JSON (Finance.xsd maxOccurs="unbounded")
LISTS = {"Line", "Error", "BatchItemResponse", "CustomField", "LinkedTxn", "TaxLine", "CDCResponse"}


def spec(*parts: str) -> Path:
    """A file of the shared spec folder (the test fails in CI, skips elsewhere, when it is missing)."""
    path = QBO.joinpath(*parts)
    if not path.is_file():
        missing = f"{path} not found (shared/api-specs sits next to the repo; or set APICENTERD_API_SPECS)"
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true: {missing}")
        pytest.skip(missing)
    return path


def _json(el: ET.Element, in_list_parent: bool = False) -> Any:
    children = list(el)
    tag = el.tag.removeprefix(NS)
    if not children:
        text = (el.text or "").strip()
        if el.attrib or tag.endswith("Ref"):  # a reference: <ItemRef name="Pump">11</ItemRef> is {"value": "11", "name": "Pump"}
            return {"value": text, **el.attrib}
        return {"true": True, "false": False}.get(text, text)
    out: dict[str, Any] = dict(el.attrib)
    for child in children:
        name = child.tag.removeprefix(NS)
        value = _json(child)
        # entities in a QueryResponse are lists, and so is a QueryResponse inside a CDCResponse
        if (
            name in LISTS
            or (tag == "QueryResponse" and child.find(NS + "Id") is not None)
            or (tag == "CDCResponse" and name == "QueryResponse")
        ):
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    return out


def fixture_json(name: str) -> dict[str, Any]:
    """A spec XML fixture as QuickBooks' JSON form (element names as keys, references as {value, name}, lists for
    repeating elements), so the connector's JSON paths are checked against Intuit's real payloads."""
    return _json(ET.parse(spec("xml-fixtures", name)).getroot())  # noqa: S314 - the project's own spec files


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def app():
    return QuickBooksConnector.simulator(seed=7)


@pytest.fixture
def sim(app):
    return app.state.sim


@pytest.fixture
def settings() -> dict:
    return QuickBooksConnector.demo_settings("http://quickbooks.test")


@pytest.fixture(name="fixture_json")
def _fixture_json_fixture():
    """``fixture_json(name)``: a spec XML fixture in QuickBooks' JSON form."""
    return fixture_json


@pytest.fixture(name="spec")
def _spec_fixture():
    """``spec(*parts)``: the path of a spec file."""
    return spec
