"""`apicenterd auth` for an Exact Online connection: the regional consent page, the code traded with
the client credentials as form fields, the tokens stored."""

from __future__ import annotations

import json
import sqlite3
import urllib.parse

import httpx
import respx

from apicenterd.cli import main


def _config(tmp_path):
    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text(
        f"""
[state]
path = "{tmp_path / "state.db"}"

[connections.exact]
connector = "exact_online"
region = "be"
client_id = "exact-client-id"
client_secret = "exact-secret-0123456789"
""",
        encoding="utf-8",
    )
    return cfg


def test_auth_uses_the_regional_consent_page_and_posts_the_client_credentials(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert main(["auth", "exact", "--config", str(cfg), "--redirect-uri", "https://localhost/callback"]) == 0
    url = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("https://"))
    parts = urllib.parse.urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://start.exactonline.be/api/oauth2/auth"
    query = urllib.parse.parse_qs(parts.query)
    assert query["client_id"] == ["exact-client-id"] and query["response_type"] == ["code"]
    state = query["state"][0]
    with respx.mock() as router:
        route = router.post("https://start.exactonline.be/api/oauth2/token").mock(
            return_value=httpx.Response(
                200, json={"access_token": "a1", "refresh_token": "r1", "expires_in": "600", "token_type": "bearer"}
            )
        )
        code = main(["auth", "exact", "--config", str(cfg), "--code", f"https://localhost/callback?code=XYZ&state={state}"])
    assert code == 0, capsys.readouterr().err
    form = urllib.parse.parse_qs(route.calls[0].request.content.decode())
    assert form["client_id"] == ["exact-client-id"] and form["client_secret"] == ["exact-secret-0123456789"]
    assert form["code"] == ["XYZ"] and form["redirect_uri"] == ["https://localhost/callback"]
    assert "authorization" not in route.calls[0].request.headers
    db = sqlite3.connect(tmp_path / "state.db")
    try:
        stored = json.loads(db.execute("SELECT data FROM tokens WHERE connection='exact'").fetchone()[0])
    finally:
        db.close()
    assert stored["refresh_token"] == "r1" and stored["expires_in"] == 600
