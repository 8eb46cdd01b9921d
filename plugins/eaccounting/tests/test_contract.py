"""The apicenterd connector contract, run against the eAccounting simulator."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from apicenterd_eaccounting.connector import EAccountingConnector

from apicenterd import Address, Customer, Entity, Invoice, InvoiceLine, Order, OrderLine, Product
from apicenterd.testing.contract import ConnectorContract

SEED = dict(seed=1, records=5, customers=1)
# the simulator is deterministic for a seed: the debtor the order and invoice samples are for
DEBTOR = next(iter(EAccountingConnector.simulator(**SEED).state.sim.customers))


class TestEAccountingContract(ConnectorContract):
    connector = EAccountingConnector
    samples = {
        Entity.PRODUCTS: Product(
            sku="CONTRACT-1", name="Contract test product", price_excl_tax=Decimal("10.00"),
            price_incl_tax=Decimal("12.10"), tax_rate=Decimal("21"),
        ),
        Entity.CUSTOMERS: Customer(
            kind="person", name="Contract Tester", email="contract@example.com",
            billing_address=Address(street="Stationsweg", house_number="1", postcode="1234 AB", city="Utrecht", country="NL"),
        ),
        Entity.ORDERS: Order(
            number="CONTRACT-ORDER-1", status="paid", created_at=datetime(2024, 5, 1, 12, tzinfo=timezone.utc), total=Decimal("12.10"),
            lines=(OrderLine(sku="EA-00001", name="Contract line", unit_price=Decimal("12.10"), tax_rate=Decimal(21)),),
            customer_id=DEBTOR, document="order",
        ),
        Entity.INVOICES: Invoice(
            number="CONTRACT-INVOICE-1", invoice_date=date(2024, 5, 1), total=Decimal("10.00"), prices_include_tax=False,
            lines=(InvoiceLine(sku="EA-00002", description="Contract line", unit_price=Decimal("10.00")),), customer_id=DEBTOR,
        ),
    }
    update_changes = {Entity.PRODUCTS: {"price_excl_tax": Decimal("11.00"), "price_incl_tax": Decimal("13.31")}}

    @pytest.fixture
    def app(self):
        """The simulator with five articles and the debtor of the order and invoice samples."""
        return self.connector.simulator(**SEED)
