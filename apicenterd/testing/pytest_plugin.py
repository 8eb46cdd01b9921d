"""pytest plugin (entry point ``pytest11``): fixtures for connector authors."""

from __future__ import annotations

import pytest

from ..context import MemoryTokenStore


@pytest.fixture
def token_store() -> MemoryTokenStore:
    """An empty in-memory token store."""
    return MemoryTokenStore()
