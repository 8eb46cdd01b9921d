"""The apicenterd connector contract, run against the CCV Shop simulator."""

from __future__ import annotations

from typing import Any

import pytest
from apicenterd_ccv_salespos import CCVSalesPOSConnector

from apicenterd import Entity, Shipment
from apicenterd.testing.contract import ConnectorContract

CONTRACT_ORDER = 90001
"""The number of the order the contract's shipment is recorded on (seeded by the ``app`` fixture)."""


class TestCCVContract(ConnectorContract):
    connector = CCVSalesPOSConnector
    samples = {
        Entity.SHIPMENTS: Shipment(order_number=str(CONTRACT_ORDER), tracking_code="3SCONTRACT0001", carrier="PostNL"),
    }
    update_changes = {Entity.SHIPMENTS: {"carrier": "DHL"}}

    @pytest.fixture
    def app(self) -> Any:
        """The simulator, seeded, plus an open order without track & trace for the shipment samples."""
        app = self.connector.simulator(seed=1, records=5)
        sim = app.state.sim
        sim.add_order([(min(sim.products), 1)], status=2, ordernumber=CONTRACT_ORDER)
        return app
