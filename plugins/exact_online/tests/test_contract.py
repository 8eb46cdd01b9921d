"""The apicenterd connector contract, run against the Exact Online simulator."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from apicenterd_exact_online import ExactOnlineConnector

from apicenterd import Address, Contact, Customer, Entity, Invoice, InvoiceLine, JournalEntry, JournalLine, Product
from apicenterd.testing.contract import ConnectorContract

SEED = dict(seed=1, records=5, customers=1)
# the simulator is deterministic for a seed: the debtor of the invoice sample
DEBTOR = next(iter(ExactOnlineConnector.simulator(**SEED).state.sim.data["crm/Accounts"]))


class TestExactOnlineContract(ConnectorContract):
    connector = ExactOnlineConnector
    samples = {
        Entity.PRODUCTS: Product(sku="CONTRACT-1", name="Contract test product", price_excl_tax=Decimal("10.00"), ean="8700000000017"),
        Entity.CUSTOMERS: Customer(
            kind="company",
            name="Contract BV",
            email="contract@example.com",
            customer_number="4711",
            contact=Contact(first_name="Con", last_name="Tract"),
            billing_address=Address(street="Stationsweg", house_number="1", postcode="1234 AB", city="Utrecht", country="NL"),
        ),
        Entity.INVOICES: Invoice(
            number="CONTRACT-INVOICE-1",
            invoice_date=date(2026, 2, 1),
            total=Decimal("10.00"),
            prices_include_tax=False,
            customer_id=DEBTOR,
            lines=(InvoiceLine(sku="EX-00002", description="Contract line", unit_price=Decimal("10.00")),),
        ),
        Entity.JOURNAL: JournalEntry(
            number="9001",
            entry_date=date(2026, 2, 1),
            lines=(JournalLine(account="1100", debit=Decimal("5.00")), JournalLine(account="8000", credit=Decimal("5.00"))),
        ),
    }

    @pytest.fixture
    def app(self):
        """The simulator with five items and the debtor of the invoice sample."""
        return self.connector.simulator(**SEED)

    update_changes = {
        Entity.PRODUCTS: {"name": "Renamed", "price_excl_tax": Decimal("11.00")},
        Entity.CUSTOMERS: {"phone": "+31 30 123 4567"},
    }
