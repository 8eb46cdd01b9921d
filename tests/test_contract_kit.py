"""The contract kit itself: it passes a correct sink with no overrides, and catches the faults it names.

The contracts run in a fresh pytest process, as a plugin author runs them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

CONNECTORS = '''
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from apicenterd import Change, Connector, ConnectorSettings, Entity, Found, Product, Sink, Source
from apicenterd.testing.contract import ConnectorContract


class Settings(ConnectorSettings):
    base_url: str = "http://memory.test"


class MemorySink(Sink[Product]):
    def __init__(self, connector: Connector) -> None:
        super().__init__(connector)
        self.rows: dict[str, Product] = {}  # a fresh target for every test's connection

    async def find(self, key: str) -> Found | None:
        for tid, row in self.rows.items():
            if row.sku == key:
                return Found(tid, row)
        return None

    async def create(self, record: Product) -> str:
        tid = f"T{len(self.rows) + 1}"
        self.rows[tid] = record
        return tid

    async def update(self, target_id: str, record: Product, fields: frozenset[str]) -> None:
        self.rows[target_id] = self.rows[target_id].model_copy(update={f: getattr(record, f) for f in fields})


class ShoutingSink(MemorySink):
    def normalize(self, record: Product) -> Product:
        return record.model_copy(update={"name": record.name + "!"})  # again and again: never settles


class ForgetfulSink(MemorySink):
    async def find_many(self, keys: Sequence[str]) -> Mapping[str, Found]:
        return {}  # disagrees with find


class Nothing(Source[Product]):
    async def changes(self, since):
        return
        yield


def connector(name: str, sink: type[Sink[Any]]) -> type[Connector]:
    return type(name.title(), (Connector,), {"name": name, "Settings": Settings, "sinks": {Entity.PRODUCTS: sink}})


class Plain(ConnectorContract):
    @pytest.fixture
    def settings(self):
        return {}


class TestGood(Plain):
    connector = connector("good", MemorySink)


class TestShouting(Plain):
    connector = connector("shouting", ShoutingSink)


class TestForgetful(Plain):
    connector = connector("forgetful", ForgetfulSink)


class TestNoSettings(ConnectorContract):
    connector = type("Reader", (Connector,), {"name": "reader", "Settings": Settings, "sources": {Entity.PRODUCTS: Nothing}})
'''


def run_contracts(tmp_path: Path) -> str:
    (tmp_path / "test_contracts.py").write_text(CONNECTORS)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider", "-k", "not entry_point", "test_contracts.py"],
        cwd=tmp_path, env={**os.environ}, capture_output=True, text=True, timeout=300,
    )
    return proc.stdout + proc.stderr


def outcome(out: str, cls: str, test: str) -> str:
    match = re.search(rf"::{cls}::{test} (PASSED|FAILED|SKIPPED|ERROR)", out)
    assert match, f"{cls}::{test} did not run:\n{out}"
    return match[1]


def test_contract_kit_passes_a_good_sink_and_catches_bad_ones(tmp_path):
    out = run_contracts(tmp_path)
    # a correct sink needs no samples, no update_changes, no simulator: only settings
    for test in ("test_create_then_find_by_key", "test_update_writes_only_the_given_fields", "test_normalize_is_idempotent",
                 "test_find_unknown_key_returns_none", "test_check_passes"):
        assert outcome(out, "TestGood", test) == "PASSED", out
    assert outcome(out, "TestShouting", "test_normalize_is_idempotent") == "FAILED"
    assert "products: normalize is not idempotent" in out
    assert outcome(out, "TestForgetful", "test_create_then_find_by_key") == "FAILED"
    assert "products: find_many {}" in out
    # without a simulator and without settings, the behaviour tests say what to override
    assert outcome(out, "TestNoSettings", "test_check_passes") == "SKIPPED"
    assert "reader has no simulator: override the settings fixture of TestNoSettings" in out
    assert outcome(out, "TestNoSettings", "test_declaration_is_valid") == "PASSED"
