"""The flow kinds: per entity, the options a flow takes and how a source record is prepared for the target."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from .model import Entity, Record, StockLevel

__all__ = ["FlowOptions", "ProductOptions", "StockOptions", "OPTIONS", "Skip", "prepare"]


class FlowOptions(BaseModel):
    """Options every flow kind accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ProductOptions(FlowOptions):
    """Options of a products flow."""

    update_existing: bool = True
    """Update products that exist in the target; false: only create missing ones."""


class StockOptions(FlowOptions):
    """Options of a stock flow."""

    available: Literal["on_hand_minus_reserved", "on_hand", "source"] = "on_hand_minus_reserved"
    """How the available quantity written to the target is computed: on hand minus
    sales reservations (default), on hand alone, or the source's own figure."""
    manage_stock: bool = True
    """Write stock only for SKUs whose stock the source manages; false: write every SKU
    (untracked ones as their on-hand figure, usually 0)."""
    allow_negative: bool = False
    """Write negative availability as is; false: write 0 instead."""


OPTIONS: dict[Entity, type[FlowOptions]] = {
    Entity.PRODUCTS: ProductOptions,
    Entity.STOCK: StockOptions,
}
"""The options model of each flow kind; kinds not listed take no options."""


@dataclasses.dataclass(frozen=True)
class Skip:
    """A record the flow deliberately does not write, and why."""

    reason: str


def prepare(entity: Entity, options: FlowOptions, record: Record) -> Record | Skip:
    """Apply the flow kind's own rules to a source record before mapping."""
    if entity is Entity.STOCK and isinstance(record, StockLevel) and isinstance(options, StockOptions):
        return _prepare_stock(options, record)
    return record


def _prepare_stock(options: StockOptions, level: StockLevel) -> StockLevel | Skip:
    if options.manage_stock and not level.tracked:
        return Skip("stock not managed for this SKU in the source (manage_stock = true)")
    if options.available == "on_hand_minus_reserved":
        available = level.on_hand - level.reserved
    elif options.available == "on_hand":
        available = level.on_hand
    else:
        available = level.available
    if not options.allow_negative and available < 0:
        available = Decimal(0)
    return level.model_copy(update={"available": available})
