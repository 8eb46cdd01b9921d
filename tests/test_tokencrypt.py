"""[state] token_key: OAuth tokens encrypted at rest, plaintext rows migrated, wrong keys named."""

from __future__ import annotations

import json
import sqlite3

import pytest

from apicenterd.config import Config, resolve
from apicenterd.engine import StateTokenStore
from apicenterd.errors import AuthError, ConfigError
from apicenterd.state import SQLiteStore
from apicenterd.tokencrypt import TokenCipher

pytestmark = pytest.mark.anyio

KEY = "k3y-for-tests-0123456789abcdef"
TOKENS = {"access_token": "acc-plain-0123456789", "refresh_token": "ref-plain-0123456789", "expires_at": 12.5}


def raw_row(path, connection="eacc"):
    db = sqlite3.connect(path)
    try:
        row = db.execute("SELECT data FROM tokens WHERE connection=?", (connection,)).fetchone()
    finally:
        db.close()
    return row[0] if row else None


async def with_store(path, fn):
    store = SQLiteStore(path)
    await store.open()
    try:
        return await fn(store)
    finally:
        await store.close()


async def test_tokens_are_stored_encrypted_and_read_back(tmp_path):
    path = tmp_path / "state.db"
    await with_store(path, lambda s: StateTokenStore(s, "eacc", TokenCipher(KEY)).save(TOKENS))
    row = raw_row(path)
    assert "acc-plain" not in row and "ref-plain" not in row and json.loads(row)["encrypted"] == "fernet"
    assert await with_store(path, lambda s: StateTokenStore(s, "eacc", TokenCipher(KEY)).load()) == TOKENS


async def test_a_plaintext_row_is_encrypted_when_a_key_is_added(tmp_path):
    path = tmp_path / "state.db"
    await with_store(path, lambda s: StateTokenStore(s, "eacc").save(TOKENS))
    assert json.loads(raw_row(path)) == TOKENS  # no key: plaintext, as before
    assert await with_store(path, lambda s: StateTokenStore(s, "eacc", TokenCipher(KEY)).load()) == TOKENS
    row = raw_row(path)
    assert "acc-plain" not in row and json.loads(row)["encrypted"] == "fernet"
    assert await with_store(path, lambda s: StateTokenStore(s, "eacc", TokenCipher(KEY)).load()) == TOKENS


@pytest.mark.parametrize(
    "cipher, damage, message",
    [
        (TokenCipher("another-key-0123456789abcdef"), False, "were encrypted with another key"),
        (None, False, "[state] token_key is not set"),
        (TokenCipher(KEY), True, "are damaged"),
    ],
)
async def test_wrong_missing_key_or_damage_is_an_auth_error_that_says_what_to_do(tmp_path, cipher, damage, message):
    path = tmp_path / "state.db"
    await with_store(path, lambda s: StateTokenStore(s, "eacc", TokenCipher(KEY)).save(TOKENS))
    if damage:
        envelope = json.loads(raw_row(path))
        envelope["data"] = envelope["data"][:-8] + "AAAAAAAA"
        await with_store(path, lambda s: s.save_tokens("eacc", envelope))
    with pytest.raises(AuthError) as exc:
        await with_store(path, lambda s: StateTokenStore(s, "eacc", cipher).load())
    assert message in str(exc.value) and "apicenterd auth eacc" in str(exc.value) and str(path) in str(exc.value)


def test_config_resolves_token_key_by_reference_and_checks_its_length(tmp_path, registry, monkeypatch):
    from apicenterd.observe.logs import redactor

    key_file = tmp_path / "token_key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    raw = {"state": {"path": "s.db", "token_key": {"file": str(key_file)}}}
    resolved = resolve(Config(**raw), registry, tmp_path / "apicenterd.toml")
    assert resolved.token_key == KEY and redactor.scrub(KEY) == "[redacted]"
    assert resolve(Config(state={"path": "s.db"}), registry, tmp_path / "a.toml").token_key is None

    monkeypatch.setenv("SHORT_TOKEN_KEY", "short")
    for token_key, message in (
        ({"env": "SHORT_TOKEN_KEY"}, "state.token_key: is 5 characters; it needs at least 16"),
        ({"env": "UNSET_TOKEN_KEY_VARIABLE"}, "state.token_key: environment variable UNSET_TOKEN_KEY_VARIABLE is not set"),
        ({"vault": "x"}, "state.token_key: give a secret string"),
    ):
        with pytest.raises(ConfigError) as exc:
            resolve(Config(state={"token_key": token_key}), registry, tmp_path / "a.toml")
        assert len(exc.value.problems) == 1 and exc.value.problems[0].startswith(message), exc.value.problems
