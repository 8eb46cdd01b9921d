"""Shared fixtures: fake connectors registered through the real plugin manager."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import fakes

from apicenterd.registry import load_registry


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def registry():
    """A registry holding only the fake connectors, loaded through pluggy as a plugin would be."""
    fakes.MemoryStore.reset()
    return load_registry([("fakes", fakes)], entry_points=False)


@pytest.fixture
def memory():
    """The fake systems' shared in-memory data."""
    fakes.MemoryStore.reset()
    return fakes.MemoryStore
