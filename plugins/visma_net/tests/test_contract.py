"""The apicenterd connector contract, run against the Visma.net simulator."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

from apicenterd_visma_net import VismaNetConnector

from apicenterd import Address, Customer, Entity, JournalEntry, JournalLine, Order, OrderLine, Product
from apicenterd.testing.contract import ConnectorContract

# the simulator is deterministic: seeded customers are numbered from 10001
DEBTOR = next(iter(VismaNetConnector.simulator(seed=1, records=5).state.sim.customers))


class TestVismaNetContract(ConnectorContract):
    connector = VismaNetConnector
    samples = {
        Entity.PRODUCTS: Product(sku="CONTRACT-1", name="Contract test product", price_excl_tax=Decimal("10.00"), tax_rate=Decimal("21")),
        Entity.CUSTOMERS: Customer(
            kind="person", name="Contract Tester", email="contract@example.com",
            billing_address=Address(street="Stationsweg 1", postcode="1234 AB", city="Utrecht", country="NL"),
        ),
        Entity.ORDERS: Order(
            number="CONTRACT-ORDER-1", status="paid", created_at=datetime(2024, 5, 1, 12, tzinfo=timezone.utc), total=Decimal("12.10"),
            lines=(OrderLine(sku="VN-00001", name="Contract line", unit_price=Decimal("12.10"), tax_rate=Decimal(21)),),
            customer_id=DEBTOR, document="order",
        ),
        Entity.JOURNAL: JournalEntry(
            number="CONTRACT-J-1", entry_date=date(2024, 5, 31),
            lines=(JournalLine(account="1510", debit=Decimal(10)), JournalLine(account="3000", credit=Decimal(10))),
        ),
    }  # fmt: skip
    update_changes = {Entity.PRODUCTS: {"price_excl_tax": Decimal("11.00")}, Entity.CUSTOMERS: {"name": "Contract Tester Renamed"}}
