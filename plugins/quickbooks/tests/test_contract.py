"""The apicenterd connector contract, run against the QuickBooks simulator."""

from __future__ import annotations

from decimal import Decimal

import pytest
from apicenterd_quickbooks import QuickBooksConnector

from apicenterd import Address, Customer, Entity, Product
from apicenterd.testing.contract import ConnectorContract


class TestQuickBooksContract(ConnectorContract):
    connector = QuickBooksConnector
    samples = {
        Entity.PRODUCTS: Product(sku="CONTRACT-1", name="Contract test product", price_excl_tax=Decimal("10.00"), currency="USD"),
        Entity.CUSTOMERS: Customer(
            kind="person",
            name="Contract Tester",
            email="contract@example.com",
            billing_address=Address(street="Main St 1", postcode="94043", city="Mountain View", country="US"),
        ),
    }
    update_changes = {Entity.PRODUCTS: {"price_excl_tax": Decimal("11.00")}}

    @pytest.fixture
    def app(self):
        return self.connector.simulator(seed=1, records=3)
