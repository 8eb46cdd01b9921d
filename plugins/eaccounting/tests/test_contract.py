"""The apicenterd connector contract, run against the eAccounting simulator."""

from __future__ import annotations

from decimal import Decimal

from apicenterd_eaccounting.connector import EAccountingConnector

from apicenterd import Address, Customer, Entity, Product
from apicenterd.testing.contract import ConnectorContract


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
    }
    update_changes = {Entity.PRODUCTS: {"price_excl_tax": Decimal("11.00"), "price_incl_tax": Decimal("13.31")}}
