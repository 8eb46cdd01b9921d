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
