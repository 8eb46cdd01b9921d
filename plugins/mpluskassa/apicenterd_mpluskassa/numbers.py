"""Article and product numbers: MplusKASSA's are numbers only, so a non-numeric SKU needs one allocated.

An allocated number is persisted (in the connection's durable store) *before* the article is
created with it, so a crash can waste a number but never hand one out twice; a candidate is
used only after MplusKASSA confirmed no article has it. The SKU itself is kept on the article
(``pluNumber``), which is how the SKU is found again; the daemon links the SKU to the number
(the target id), so the audit trail shows which number each SKU got.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from apicenterd import FatalError, RecordError, TokenStore

__all__ = ["Allocator", "numeric", "STORE_KEY"]

STORE_KEY = "mpluskassa_numbers"
"""The key under which the allocation state lives in the connection's durable store."""


def numeric(value: str) -> int | None:
    """``value`` as an article number when it is one (digits only, no sign, fits an xsd:long)."""
    value = value.strip()
    if value.isascii() and value.isdigit() and 0 < int(value) < 2**63:
        return int(value)
    return None


class Allocator:
    """Hands out article and product numbers from ``[start, end]``, never the same one twice.

    ``free(kind, numbers)`` asks MplusKASSA which of ``numbers`` no article (``kind="article"``)
    or product (``"product"``) has. Numbers are reserved ``block`` at a time: the block is saved
    as used before any of it is handed out (a crash wastes the rest of a block, never repeats a
    number), and one call checks the whole block. Product numbers of variant groups are kept per
    group key, so a group always gets the number it got the first time.
    """

    def __init__(
        self,
        store: TokenStore,
        start: int,
        end: int,
        free: Callable[[str, Sequence[int]], Awaitable[set[int]]],
        *,
        block: int = 50,
        tries: int = 20,
    ):
        if not 0 < start <= end:
            raise ValueError(f"allocation range {start}..{end} is empty or not positive")
        self.store, self.start, self.end, self.free, self.block, self.tries = store, start, end, free, block, tries
        self._pools: dict[str, list[int]] = {"article": [], "product": []}
        self._lock = anyio.Lock()

    async def _state(self) -> dict[str, Any]:
        saved = await self.store.load() or {}
        state = saved.get(STORE_KEY)
        return dict(state) if isinstance(state, dict) else {}

    async def _save(self, state: dict[str, Any]) -> None:
        saved = dict(await self.store.load() or {})
        saved[STORE_KEY] = state
        await self.store.save(saved)

    async def _next(self, kind: str, state: dict[str, Any], what: str) -> int:
        pool = self._pools[kind]
        for _ in range(self.tries):
            if pool:
                return pool.pop(0)
            first = max(int(state.get(f"next_{kind}", self.start)), self.start)
            if first > self.end:
                raise FatalError(f"{what}: the {kind} number range {self.start}..{self.end} is used up; widen allocation_range")
            last = min(first + self.block - 1, self.end)
            state[f"next_{kind}"] = last + 1
            await self._save(state)  # durable before use: a crash wastes these numbers, never repeats one
            candidates = list(range(first, last + 1))
            free = await self.free(kind, candidates)
            # a numeric group key may have claimed a number of the range as its product number
            claimed = {int(n) for n in (state.get("groups") or {}).values()} if kind == "product" else set()
            pool.extend(n for n in candidates if n in free and n not in claimed)
        raise RecordError(f"{what}: {self.tries} blocks of {kind} numbers in a row from {self.start} are taken in MplusKASSA")

    async def article_number(self, sku: str) -> int:
        """A new article number for ``sku`` (the caller looked the SKU up first)."""
        async with self._lock:
            state = await self._state()
            return await self._next("article", state, f"article {sku!r}")

    async def product_number(self, group: str, *, preferred: int | None = None, allocate: bool = True) -> int | None:
        """The product number of variant group ``group``: the one it got before, else
        ``preferred`` (a numeric group key) when no product in MplusKASSA and no other group has
        it, else a new one from the range (None when ``allocate`` is false). The number is saved
        for the group before it is returned, so the group keeps it for good (never reallocated)
        and a product created with it is known as the group's after a crash."""
        async with self._lock:
            state = await self._state()
            groups = dict(state.get("groups") or {})
            if group in groups:
                return int(groups[group])
            number: int | None = None
            claimed = {int(n) for n in groups.values()}
            if preferred is not None and preferred not in claimed and preferred in await self.free("product", [preferred]):
                number = preferred
            if number is None:
                if not allocate:
                    return None
                number = await self._next("product", state, f"variant group {group!r}")
            groups[group] = number
            state["groups"] = groups
            await self._save(state)
            return number

    async def known_product_number(self, group: str) -> int | None:
        """The product number group ``group`` got before, if any."""
        groups = (await self._state()).get("groups") or {}
        return int(groups[group]) if group in groups else None
