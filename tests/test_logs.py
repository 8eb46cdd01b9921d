"""observe.logs: secrets and sensitive keys never reach a log line."""

from __future__ import annotations

import io
import json
import uuid

import structlog

from apicenterd.observe.logs import REDACTED, Redactor, configure, get_logger, redactor


def test_overlapping_secrets_are_replaced_whole():
    r = Redactor()
    pairs = [(f"k{i:02d}{uuid.uuid4().hex[:6]}", f"TAIL{i:02d}") for i in range(20)]
    for short, tail in pairs:
        r.add([short, short + tail])  # one secret is a prefix of another
    for short, tail in pairs:
        assert r.scrub(f"token={short + tail};") == f"token={REDACTED};"
        assert r.scrub(f"key {short} end") == f"key {REDACTED} end"


def test_short_values_are_not_secrets():
    r = Redactor()
    r.add(["abc", "", "abcd"])
    assert r.scrub("abc abcd") == f"abc {REDACTED}"


def test_scrub_recurses_and_hides_sensitive_keys():
    r = Redactor()
    r.add(["s3cr3t-value"])
    event = {
        "event": "calling s3cr3t-value",
        "Authorization": "Bearer anything",
        "nested": {"client_secret": "x", "list": ["a s3cr3t-value", ("s3cr3t-value",)]},
        "error": ValueError("bad s3cr3t-value"),
        "count": 3,
    }
    assert r.scrub(event) == {
        "event": f"calling {REDACTED}",
        "Authorization": REDACTED,
        "nested": {"client_secret": REDACTED, "list": [f"a {REDACTED}", (REDACTED,)]},
        "error": f"ValueError: bad {REDACTED}",
        "count": 3,
    }


def test_log_lines_are_json_and_redacted():
    secret = f"logged-{uuid.uuid4().hex}"
    redactor.add([secret])
    out = io.StringIO()
    configure("info", stream=out)
    try:
        log = get_logger(connection="eacc")
        log.info("refreshing", detail=f"with {secret}", refresh_token="anything")
        log.debug("not shown")
    finally:
        structlog.reset_defaults()
    [line] = out.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "refreshing" and event["connection"] == "eacc"
    assert event["detail"] == f"with {REDACTED}" and event["refresh_token"] == REDACTED
    assert secret not in line


def test_learned_tokens_are_redacted_and_each_group_keeps_only_its_newest():
    from apicenterd.observe.logs import LEARNED_PER_GROUP

    r = Redactor()
    first = {"access_token": f"acc-{uuid.uuid4().hex}", "refresh_token": f"ref-{uuid.uuid4().hex}", "token_type": "Bearer"}
    r.learn_tokens("oauth:eacc", first)
    assert r.scrub(f"Authorization: Bearer {first['access_token']}") == f"Authorization: Bearer {REDACTED}"
    assert r.scrub(first["refresh_token"]) == REDACTED and r.scrub("Bearer") == "Bearer"
    later = [f"later-{i}-{uuid.uuid4().hex}" for i in range(LEARNED_PER_GROUP)]
    r.learn("oauth:eacc", later)
    assert r.scrub(first["access_token"]) == first["access_token"]  # rotated out: the list does not grow forever
    assert all(r.scrub(v) == REDACTED for v in later)
    r.learn("tokens:other", [f"other-{uuid.uuid4().hex}"])
    assert all(r.scrub(v) == REDACTED for v in later)  # groups are bounded one by one


def test_error_text_and_connector_errors_carry_no_known_secret():
    from apicenterd.errors import AuthError, RecordError
    from apicenterd.observe.logs import error_text

    token = f"live-{uuid.uuid4().hex}"
    redactor.learn("test:errors", [token])
    exc = RecordError(f"vendor said: headers were Authorization: Bearer {token}", status=400)
    assert token not in str(exc) and REDACTED in str(exc)
    assert error_text(ValueError(f"x {token}"), "internal error: ") == f"internal error: ValueError: x {REDACTED}"
    assert token not in str(AuthError(f"{token}"))


def test_a_static_token_setting_is_a_secret_even_as_plain_str():
    from pydantic import SecretStr

    from apicenterd.config import _secret_values
    from apicenterd.plugin import ConnectorSettings

    class Settings(ConnectorSettings):
        api_token: str
        password: SecretStr
        shop_name: str

    found = _secret_values(Settings(base_url="http://x", api_token="static-token-0123", password=SecretStr("pw-0123"), shop_name="Shop One"))
    assert found == {"static-token-0123", "pw-0123"}
