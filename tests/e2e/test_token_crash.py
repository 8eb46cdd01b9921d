"""A crash at each point of a token refresh, against the eAccounting simulator (rotating refresh
tokens, the old one retired at once): what the next process finds in the store."""

from __future__ import annotations

import pytest
from apicenterd_eaccounting.connector import EAccountingConnector

from apicenterd import AuthError, Entity
from apicenterd.testing import MemoryTokenStore, connect

pytestmark = pytest.mark.anyio

SETTINGS = EAccountingConnector.demo_settings("http://sim.test")


class Crash(BaseException):
    """The process dies here."""


class CrashingStore(MemoryTokenStore):
    """A durable store (its content survives the 'crash') that can die before or after a save."""

    def __init__(self, when: str | None = None):
        super().__init__()
        self.when = when

    async def load(self):
        if self.when == "before_call":
            raise Crash("killed before the refresh call")
        return await super().load()

    async def save(self, tokens):
        if self.when == "before_save":
            raise Crash("killed after the vendor answered, before the new tokens were durable")
        await super().save(tokens)
        if self.when == "after_save":
            raise Crash("killed after the save, before the new access token was used")


async def a_call(app, store):
    async with connect(EAccountingConnector, SETTINGS, app=app, tokens=store) as conn:
        return await conn.find(Entity.PRODUCTS, "NO-SUCH-SKU")


async def test_crash_before_the_refresh_call_leaves_the_old_token_valid():
    app = EAccountingConnector.simulator(seed=1)
    store = CrashingStore("before_call")
    with pytest.raises(Crash):
        await a_call(app, store)
    assert app.state.sim.token_requests == 0  # died before asking the vendor
    store.when = None
    assert await a_call(app, store) is None  # the bootstrap token still works
    assert app.state.sim.token_requests == 1 and store.tokens["refresh_token"]


async def test_crash_after_the_save_the_next_process_uses_the_stored_tokens():
    app = EAccountingConnector.simulator(seed=1)
    store = CrashingStore("after_save")
    with pytest.raises(Crash):
        await a_call(app, store)
    saved = dict(store.tokens)
    store.when = None
    requests = app.state.sim.token_requests
    assert await a_call(app, store) is None
    assert app.state.sim.token_requests == requests  # the saved access token was still good
    assert store.tokens == saved


async def test_crash_between_the_vendor_answer_and_the_save_is_the_one_unclosable_window():
    app = EAccountingConnector.simulator(seed=1)
    store = CrashingStore("before_save")
    with pytest.raises(Crash):
        await a_call(app, store)
    assert store.tokens is None  # never durable: the vendor already retired the bootstrap token
    store.when = None
    with pytest.raises(AuthError) as exc:
        await a_call(app, store)
    message = str(exc.value)
    assert "re-authorise" in message and "apicenterd auth" in message
