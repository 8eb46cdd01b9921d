"""The apicenterd connector contract, run against the MplusKASSA simulator."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from apicenterd_mpluskassa import MplusKassaConnector

from apicenterd import Address, Customer, Entity, Order, OrderLine, Product
from apicenterd.testing.contract import ConnectorContract


class TestMplusKassaContract(ConnectorContract):
    connector = MplusKassaConnector
    samples = {
        Entity.PRODUCTS: Product(sku="424242", name="Contract test product", price_incl_tax=Decimal("12.10"), tax_rate=Decimal("21")),
        Entity.CUSTOMERS: Customer(
            kind="person",
            name="Contract Tester",
            email="contract@example.com",
            billing_address=Address(street="Stationsweg", house_number="1", postcode="1234 AB", city="Utrecht", country="NL"),
        ),
        Entity.ORDERS: Order(
            number="CONTRACT-ORDER-1",
            status="paid",
            created_at=datetime(2024, 5, 1, 12, tzinfo=timezone.utc),
            total=Decimal("12.10"),
            lines=(OrderLine(sku="1000", name="Contract line", unit_price=Decimal("12.10"), tax_rate=Decimal(21)),),
            customer_id="1",
            document="order",
        ),
    }
    update_changes = {Entity.PRODUCTS: {"price_incl_tax": Decimal("13.31"), "price_excl_tax": Decimal("11.00")}}

    @pytest.fixture
    def app(self):
        """The simulator with five articles (1000-1004), two relations and a till order."""
        return self.connector.simulator(seed=1, records=5, relations=2, orders=1)
