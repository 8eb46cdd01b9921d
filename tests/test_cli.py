"""The command line: exit statuses, messages, JSON output."""

from __future__ import annotations

import json

import pytest

import apicenterd
from apicenterd import cli


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def memory_products_config(tmp_path):
    """A config file with one products flow from the in-memory source to the in-memory target."""
    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text(
        f"""
[state]
path = "{tmp_path / 'state.db'}"

[connections.src]
connector = "memsource"

[connections.dst]
connector = "memtarget"

[flows.products]
source = "src"
target = "dst"
entity = "products"
interval = "1m"
""",
        encoding="utf-8",
    )
    return cfg



def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert apicenterd.__version__ in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["nonsense"], "invalid choice"),
        (["runs", "--limit", "zero"], "not a whole number"),
        (["runs", "--limit", "0"], "must be at least 1"),
        (["simulate", "eaccounting", "--port", "70000"], "not a TCP port"),
        (["flows", "run"], "the following arguments are required: name"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_no_command_prints_help_and_exits_2(capsys):
    code, _, err = run_cli(capsys)
    assert code == 2 and "COMMAND" in err


def test_plugins_json_lists_bundled_connectors(capsys):
    pytest.importorskip("apicenterd_eaccounting")
    code, out, _ = run_cli(capsys, "plugins", "--json")
    assert code == 0
    data = json.loads(out)
    by_name = {c["name"]: c for c in data["connectors"]}
    assert by_name["eaccounting"]["distribution"] == "apicenterd-eaccounting"
    assert "products" in by_name["eaccounting"]["writes"]
    assert "products" in by_name["ccv_salespos"]["reads"]


def test_check_reports_every_mistake_with_its_path_and_exits_2(capsys, tmp_path):
    pytest.importorskip("apicenterd_eaccounting")
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        """
[connections.salespos]
connector = "ccv_salespos"
base_url = "http://127.0.0.1:1"
public_key = "p"
private_key = { env = "APICENTERD_TEST_UNSET_VARIABLE" }

[connections.eaccounting]
connector = "eaccounting"
base_url = "http://127.0.0.1:2"
client_id = "x"
client_secret = "y"
colour = "blue"

[flows.products_to_eaccounting]
source = "salespos"
target = "eacc"
entity = "products"
interval = "5 minutes"
""",
        encoding="utf-8",
    )
    code, out, err = run_cli(capsys, "check", "--config", str(cfg))
    assert code == 2 and out == ""
    assert 'flows.products_to_eaccounting.target: connection "eacc" is not defined (defined: eaccounting, salespos)' in err
    assert "connections.salespos.private_key: environment variable APICENTERD_TEST_UNSET_VARIABLE is not set" in err
    assert "connections.eaccounting.colour: unknown setting" in err
    assert "flows.products_to_eaccounting.interval:" in err
    assert "Traceback" not in err


def test_check_demo_config_passes(capsys, monkeypatch):
    pytest.importorskip("apicenterd_eaccounting")
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    registry = cli._registry()
    cli._demo_credentials(root / "etc" / "demo.toml", registry)
    code, out, err = run_cli(capsys, "check", "--config", str(root / "etc" / "demo.toml"))
    assert code == 0, err
    assert "3 flows" in out


def test_example_config_passes_check_with_credentials(capsys, monkeypatch, tmp_path):
    pytest.importorskip("apicenterd_eaccounting")
    from pathlib import Path

    for name in ("ccv_private_key", "eaccounting_client_secret", "eaccounting_refresh_token"):
        (tmp_path / name).write_text(f"secret-{name}\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    example = Path(__file__).resolve().parents[1] / "etc" / "apicenterd.example.toml"
    code, out, err = run_cli(capsys, "check", "--config", str(example))
    assert code == 0, err


def test_flows_run_unknown_flow(capsys):
    pytest.importorskip("apicenterd_eaccounting")
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cli._demo_credentials(root / "etc" / "demo.toml", cli._registry())
    code, _, err = run_cli(capsys, "flows", "run", "nope", "--config", str(root / "etc" / "demo.toml"))
    assert code == 2
    assert "no flow named 'nope' (defined: orders_to_eaccounting, products_to_eaccounting, stock_to_eaccounting)" in err


def test_simulate_unknown_connector(capsys):
    code, _, err = run_cli(capsys, "simulate", "nosuch")
    assert code == 2 and "no connector named 'nosuch'" in err


def test_orders_example_config_passes_check(capsys):
    pytest.importorskip("apicenterd_eaccounting")
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cli._demo_credentials(root / "etc" / "demo.toml", cli._registry())
    code, out, err = run_cli(capsys, "check", "--config", str(root / "etc" / "orders.example.toml"))
    assert code == 0, err
    code, out, err = run_cli(capsys, "flows", "mapping", "orders_to_eaccounting", "--config", str(root / "etc" / "orders.example.toml"))
    assert code == 0 and "reference" in out and "prefix('POS-')" in out


# --- dlq: ids that name nothing -----------------------------------------------------------------


def dlq_config(tmp_path):
    """A config of the bundled connectors (never contacted) whose state holds one open dead letter."""
    import anyio

    from apicenterd.state import SQLiteStore
    from apicenterd.state.base import AuditEntry

    pytest.importorskip("apicenterd_eaccounting")
    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text(
        f"""
[state]
path = "{tmp_path / 'state.db'}"

[connections.salespos]
connector = "ccv_salespos"
base_url = "http://127.0.0.1:1"
public_key = "p"
private_key = "k"

[connections.eaccounting]
connector = "eaccounting"
base_url = "http://127.0.0.1:1"
token_url = "http://127.0.0.1:1/connect/token"
client_id = "x"
client_secret = "y"

[flows.products]
source = "salespos"
target = "eaccounting"
entity = "products"
interval = "1h"
""",
        encoding="utf-8",
    )

    async def seed():
        store = SQLiteStore(tmp_path / "state.db")
        await store.open()
        try:
            entry = AuditEntry(flow="products", run_id=1, entity="products", source_id="B", action="failed", key="B", reason="boom")
            await store.settle(entry, payload='{"sku": "B"}')
            (letter,) = await store.dead_letters()
            return letter.id
        finally:
            await store.close()

    return cfg, anyio.run(seed)


def open_letters(tmp_path):
    import anyio

    from apicenterd.state import SQLiteStore

    async def read():
        store = SQLiteStore(tmp_path / "state.db")
        await store.open()
        try:
            return [d.id for d in await store.dead_letters()]
        finally:
            await store.close()

    return anyio.run(read)


@pytest.mark.parametrize("action", ["replay", "discard"])
def test_dlq_unknown_id_is_an_error_and_nothing_is_done(capsys, tmp_path, action):
    cfg, known = dlq_config(tmp_path)
    code, out, err = run_cli(capsys, "dlq", action, "999", "--config", str(cfg))
    assert code == 2 and out == ""
    assert f"dlq {action}: no open dead letter with id 999" in err and "Traceback" not in err
    # a known id beside unknown ones: refused as a whole, the known letter is still open
    code, out, err = run_cli(capsys, "dlq", action, str(known), "998", "999", "--config", str(cfg))
    assert code == 2 and "with ids 998, 999" in err
    assert open_letters(tmp_path) == [known]


def test_dlq_id_of_a_letter_that_is_no_longer_open_is_an_error(capsys, tmp_path):
    cfg, known = dlq_config(tmp_path)
    assert run_cli(capsys, "dlq", "discard", str(known), "--config", str(cfg))[0] == 0
    code, _, err = run_cli(capsys, "dlq", "discard", str(known), "--config", str(cfg))
    assert code == 2 and f"no open dead letter with id {known}" in err


def test_dlq_id_outside_the_flow_filter_is_an_error(capsys, tmp_path):
    cfg, known = dlq_config(tmp_path)
    code, _, err = run_cli(capsys, "dlq", "discard", str(known), "--flow", "other", "--config", str(cfg))
    assert code == 2 and f"matching --flow/--error with id {known}" in err
    assert open_letters(tmp_path) == [known]


@pytest.mark.parametrize(
    "argv",
    [
        ["dlq", "replay", str(2**63)],
        ["dlq", "discard", "1", "9" * 40],
        ["dlq", "show", str(2**64)],
        ["audit", "--run", str(2**63)],
        ["runs", "--limit", "9" * 30],
    ],
)
def test_an_id_beyond_sqlite_integers_is_a_usage_error(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "at most 9223372036854775807" in err and "Traceback" not in err


def test_dlq_show_of_the_largest_id_says_there_is_none(capsys, tmp_path):
    cfg, _ = dlq_config(tmp_path)
    code, _, err = run_cli(capsys, "dlq", "show", str(2**63 - 1), "--config", str(cfg))
    assert code == 2 and f"no dead letter {2**63 - 1}" in err


# --- check: values that parse but make no sense -------------------------------------------------

CHECK_BASE = """
[connections.salespos]
connector = "ccv_salespos"
base_url = "http://127.0.0.1:1"
public_key = "p"
private_key = {private_key}
timeout = {timeout}

[connections.eaccounting]
connector = "eaccounting"
base_url = {base_url}
client_id = "x"
client_secret = "y"

[flows.products]
source = "salespos"
target = "eaccounting"
entity = "products"
{schedule}
{map}
"""


def check_config(tmp_path, **parts) -> str:
    values = {"private_key": '"k"', "timeout": "10", "base_url": '"http://127.0.0.1:2"', "schedule": 'interval = "1m"', "map": ""}
    values.update(parts)
    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text(CHECK_BASE.format(**values), encoding="utf-8")
    return str(cfg)


def test_check_base_config_passes(capsys, tmp_path):
    pytest.importorskip("apicenterd_eaccounting")
    code, out, err = run_cli(capsys, "check", "--config", check_config(tmp_path))
    assert code == 0, err


@pytest.mark.parametrize(
    "parts, where, words",
    [
        ({"timeout": "inf"}, "connections.salespos.timeout", "finite number"),
        ({"timeout": "nan"}, "connections.salespos.timeout", "finite number"),
        ({"timeout": "true"}, "connections.salespos.timeout", "got the boolean true"),
        ({"schedule": "interval = true"}, "flows.products.interval", "got the boolean true"),
        ({"schedule": "interval = 1e-7"}, "flows.products.interval", "has no unit"),
        ({"schedule": 'interval = "0.5s"'}, "flows.products.interval", "must be between 1s and 365d"),
        ({"schedule": 'interval = "500ms"'}, "flows.products.interval", "must be between 1s and 365d"),
        ({"schedule": 'interval = "400d"'}, "flows.products.interval", "must be between 1s and 365d"),
        ({"schedule": 'cron = "0 0 31 2 *"'}, "flows.products.cron", "never fires"),
        ({"schedule": 'cron = "0 0 30 2 *"'}, "flows.products.cron", "never fires"),
        ({"map": '[[flows.products.map]]\nfield = "name"\ntransforms = [["truncate", -5]]'},
         "flows.products.map[0].transforms[0]", "length must be at least 1"),
        ({"base_url": '"not a url"'}, "connections.eaccounting.base_url", "not an absolute http"),
        ({"base_url": '"http://a b"'}, "connections.eaccounting.base_url", "white space"),
        ({"base_url": '"ftp://example.com"'}, "connections.eaccounting.base_url", "http"),
        ({"base_url": '"http://"'}, "connections.eaccounting.base_url", "no host"),
        ({"base_url": '"http://h:99999"'}, "connections.eaccounting.base_url", "not a valid URL"),
    ],
)  # fmt: skip
def test_check_refuses_values_that_make_no_sense(capsys, tmp_path, parts, where, words):
    pytest.importorskip("apicenterd_eaccounting")
    cfg = check_config(tmp_path, **parts)
    code, out, err = run_cli(capsys, "check", "--config", cfg)
    assert code == 2 and out == "" and "Traceback" not in err
    line = next((l for l in err.splitlines() if f": {where}: " in l), None)
    assert line is not None, err
    assert line.removeprefix("apicenterd: ").startswith(f"{cfg}: {where}: ") and words in line


def test_check_refuses_a_token_url_that_is_not_a_url(capsys, tmp_path):
    pytest.importorskip("apicenterd_eaccounting")
    cfg = check_config(tmp_path, base_url='"http://127.0.0.1:2"\ntoken_url = "identity.vismaonline.com/connect/token"')
    code, _, err = run_cli(capsys, "check", "--config", cfg)
    assert code == 2 and "connections.eaccounting.token_url: " in err and "http" in err


def test_check_refuses_an_empty_secret_file(capsys, tmp_path):
    pytest.importorskip("apicenterd_eaccounting")
    secret = tmp_path / "private_key"
    secret.write_text("\n", encoding="utf-8")
    cfg = check_config(tmp_path, private_key=f'{{ file = "{secret}" }}')
    code, _, err = run_cli(capsys, "check", "--config", cfg)
    assert code == 2
    assert f"connections.salespos.private_key: secret file {secret} is empty" in err


def test_check_refuses_a_secret_file_that_is_a_fifo_without_waiting(tmp_path):
    import os
    import subprocess
    import sys

    pytest.importorskip("apicenterd_eaccounting")
    fifo = tmp_path / "private_key"
    os.mkfifo(fifo)
    cfg = check_config(tmp_path, private_key=f'{{ file = "{fifo}" }}')
    # nobody ever writes to the FIFO: a reader that opens it waits forever, and the timeout fails the test
    done = subprocess.run(
        [sys.executable, "-m", "apicenterd.cli", "check", "--config", cfg], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert f"connections.salespos.private_key: secret file {fifo} is not a regular file (a FIFO)" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_refuses_deeply_nested_toml(capsys, tmp_path):
    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "check", "--config", str(cfg))
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.startswith(f"apicenterd: {cfg}: not valid TOML: ") and "nested too deeply" in err


EVIL_SKU = "EVIL\nFORGED  row  created\x1b[31m\x00\r\t\u2028X"
EVIL_SHOWN = "EVIL\\nFORGED  row  created\\x1b[31m\\x00\\r\\t\\u2028X"


def test_terminal_safe_escapes_every_control_character():
    raw = "a\nb\rc\td\x00e\x1b[31mf\x7fg\x85h\u2028i\u2029j\u202ek\x07"
    assert cli.terminal_safe(raw) == "a\\nb\\rc\\td\\x00e\\x1b[31mf\\x7fg\\x85h\\u2028i\\u2029j\\u202ek\\x07"
    assert cli.terminal_safe(None) == "" and cli.terminal_safe("plain ÄÖ € text") == "plain ÄÖ € text"


def test_vendor_text_with_control_characters_prints_as_one_escaped_row(capsys, tmp_path, monkeypatch, registry, memory):
    """A SKU with a newline, an ANSI escape and a NUL neither forges a table row nor reaches the
    terminal raw: in `flows run --dry-run`, `flows run`, `audit`, `dlq list` and `runs`."""
    from fakes import product

    monkeypatch.setattr(cli, "_registry", lambda: registry)
    memory.put(product(EVIL_SKU), "1")
    memory.put(product("GOOD"), "2")
    cfg = memory_products_config(tmp_path)
    code, out, _ = run_cli(capsys, "flows", "run", "products", "--dry-run", "--config", str(cfg))
    assert code == 0
    assert f"would create products {EVIL_SHOWN}\n" in out
    memory.fail_create.add(EVIL_SKU)  # the target rejects it, naming the SKU: an error with the same text
    code, out, _ = run_cli(capsys, "flows", "run", "products", "--config", str(cfg))
    assert code == 3 and "failed 1" in out  # records failed: EXIT_RECORDS_FAILED
    outputs = {}
    for argv, rows in ((["audit"], 2), (["dlq", "list"], 1), (["runs"], 1)):
        code, out, _ = run_cli(capsys, *argv, "--config", str(cfg))
        assert code == 0
        outputs[argv[0]] = out
        assert len(out.splitlines()) == 1 + rows, out  # header + one line per row: nothing forged
    assert EVIL_SHOWN in outputs["audit"] and EVIL_SHOWN in outputs["dlq"]
    for where, out in outputs.items():
        for raw in ("\x1b", "\x00", "\r", "\t", "\u2028"):
            assert raw not in out, f"{raw!r} reached the terminal raw in `{where}`"


TOKEN_URL = "http://127.0.0.1:9/connect/token"


@pytest.fixture
def oauth_config(tmp_path):
    """A config with one OAuth2 (eAccounting) connection; its token endpoint is never really called."""
    pytest.importorskip("apicenterd_eaccounting")
    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text(
        f"""
[state]
path = "{tmp_path / 'state.db'}"

[connections.eacc]
connector = "eaccounting"
base_url = "http://127.0.0.1:9"
token_url = "{TOKEN_URL}"
client_id = "cid"
client_secret = "csecret-0123456789"
""",
        encoding="utf-8",
    )
    return cfg


def stored_tokens(tmp_path, connection="eacc"):
    import sqlite3

    if not (tmp_path / "state.db").exists():
        return None
    db = sqlite3.connect(tmp_path / "state.db")
    try:
        row = db.execute("SELECT data FROM tokens WHERE connection=?", (connection,)).fetchone()
    finally:
        db.close()
    return json.loads(row[0]) if row else None


def consent_state(capsys, cfg) -> str:
    import urllib.parse

    code, out, err = run_cli(capsys, "auth", "eacc", "--config", str(cfg))
    assert code == 0, err
    url = next(line for line in out.splitlines() if "?client_id=" in line)
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["state"][0]


def test_auth_remembers_the_state_and_accepts_the_redirect_that_carries_it(capsys, oauth_config, tmp_path):
    import os
    import stat

    import respx

    state = consent_state(capsys, oauth_config)
    state_file = tmp_path / "state.db.auth-state"
    assert stat.S_IMODE(os.stat(state_file).st_mode) == 0o600
    assert state in state_file.read_text()
    with respx.mock() as router:
        route = router.post(TOKEN_URL).mock(
            return_value=httpx_response(200, {"access_token": "a1-xxxx", "refresh_token": "r1-xxxx", "expires_in": 3600})
        )
        code, out, err = run_cli(
            capsys,
            "auth",
            "eacc",
            "--config",
            str(oauth_config),
            "--code",
            f"http://127.0.0.1:8765/callback?code=C0DE&state={state}&realmId=9130350000000001",
        )
    assert code == 0, err
    assert "realmId = 9130350000000001" in out  # a vendor's extra redirect parameter is shown (QuickBooks' company)
    assert "C0DE" not in out
    assert route.call_count == 1 and b"code=C0DE" in route.calls[0].request.content
    assert stored_tokens(tmp_path)["refresh_token"] == "r1-xxxx"
    # the state is good for one code only
    code, _, err = run_cli(
        capsys, "auth", "eacc", "--config", str(oauth_config), "--code", f"http://127.0.0.1:8765/callback?code=AGAIN&state={state}"
    )
    assert code == 2 and "no consent URL is pending" in err


def httpx_response(status, body):
    import httpx

    return httpx.Response(status, json=body)


@pytest.mark.parametrize("case", ["mismatch", "expired", "no state in URL", "bare code", "never asked"])
def test_auth_refuses_a_code_whose_state_is_wrong_or_missing(capsys, oauth_config, tmp_path, monkeypatch, case):
    import time

    import respx

    if case != "never asked":
        state = consent_state(capsys, oauth_config)
    code_arg = {
        "mismatch": "http://127.0.0.1:8765/callback?code=C0DE&state=forged-by-someone-else",
        "no state in URL": "http://127.0.0.1:8765/callback?code=C0DE",
        "bare code": "C0DE",
    }.get(case, "http://127.0.0.1:8765/callback?code=C0DE&state=" + (state if case == "expired" else "x"))
    if case == "expired":
        later = time.time() + 3601
        monkeypatch.setattr(time, "time", lambda: later)
    with respx.mock(assert_all_called=False) as router:
        route = router.post(TOKEN_URL).mock(return_value=httpx_response(200, {"access_token": "a", "refresh_token": "r-xxxx"}))
        code, out, err = run_cli(capsys, "auth", "eacc", "--config", str(oauth_config), "--code", code_arg)
    assert code == 2 and "Traceback" not in err
    expected = {
        "mismatch": "does not match the consent URL",
        "expired": "expired",
        "no state in URL": "cannot be checked against the consent request",
        "bare code": "--state",
        "never asked": "no consent URL is pending",
    }[case]
    assert expected in err
    assert route.call_count == 0 and stored_tokens(tmp_path) is None


def test_auth_bare_code_with_the_right_state_is_accepted(capsys, oauth_config, tmp_path):
    import respx

    state = consent_state(capsys, oauth_config)
    with respx.mock() as router:
        router.post(TOKEN_URL).mock(return_value=httpx_response(200, {"access_token": "a", "refresh_token": "r2-xxxx"}))
        code, _, err = run_cli(capsys, "auth", "eacc", "--config", str(oauth_config), "--code", "C0DE", "--state", state)
    assert code == 0, err
    assert stored_tokens(tmp_path)["refresh_token"] == "r2-xxxx"


def test_auth_refuses_a_refresh_token_on_the_command_line(capsys, oauth_config, tmp_path):
    code, out, err = run_cli(capsys, "auth", "eacc", "--config", str(oauth_config), "--refresh-token", "literal-token-123")
    assert code == 2 and "ps" in err and "--refresh-token -" in err and "--refresh-token-file" in err
    assert "literal-token-123" not in out + err
    assert stored_tokens(tmp_path) is None


def refresh_answers(router, **rotated):
    """The token endpoint: takes the refresh tokens named in ``rotated`` (answering the rotated one), refuses others."""
    import urllib.parse

    def answer(request):
        sent = urllib.parse.parse_qs(request.content.decode())["refresh_token"][0]
        if sent in rotated:
            return httpx_response(200, {"access_token": f"at-{sent}", "refresh_token": rotated[sent], "expires_in": 3600})
        return httpx_response(400, {"error": "invalid_grant"})

    return router.post(TOKEN_URL).mock(side_effect=answer)


def test_auth_reads_the_refresh_token_from_stdin_or_a_file(capsys, oauth_config, tmp_path, monkeypatch):
    import io

    import respx

    token_file = tmp_path / "token.txt"
    with respx.mock() as router:
        route = refresh_answers(router, **{"from-stdin-token-1": "rotated-1", "from-file-token-2": "rotated-2"})
        monkeypatch.setattr("sys.stdin", io.StringIO("  from-stdin-token-1\n"))
        code, out, err = run_cli(capsys, "auth", "eacc", "--config", str(oauth_config), "--refresh-token", "-")
        assert code == 0, err
        assert route.call_count == 1  # validated with one call: the refresh grant
        # what the vendor answered is stored (it rotates the token it took)
        assert stored_tokens(tmp_path)["refresh_token"] == "rotated-1" and "from-stdin-token-1" not in out + err
        assert f"tokens stored in the state store {tmp_path / 'state.db'}" in out

        token_file.write_text("from-file-token-2\n", encoding="utf-8")
        code, _, err = run_cli(capsys, "auth", "eacc", "--config", str(oauth_config), "--refresh-token-file", str(token_file))
        assert code == 0, err
        assert stored_tokens(tmp_path)["refresh_token"] == "rotated-2"

    token_file.write_text("\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "auth", "eacc", "--config", str(oauth_config), "--refresh-token-file", str(token_file))
    assert code == 2 and "holds no token" in err
    code, _, err = run_cli(capsys, "auth", "eacc", "--config", str(oauth_config), "--refresh-token-file", str(tmp_path / "nope"))
    assert code == 2 and "cannot read" in err and "Traceback" not in err
    assert stored_tokens(tmp_path)["refresh_token"] == "rotated-2"


def test_auth_a_refresh_token_the_vendor_refuses_is_not_stored(capsys, oauth_config, tmp_path, monkeypatch):
    """`auth --refresh-token rt.bogus` used to say "stored"; the failure came later as a paused connection."""
    import io

    import respx

    with respx.mock() as router:
        route = refresh_answers(router)
        monkeypatch.setattr("sys.stdin", io.StringIO("rt.bogus\n"))
        code, out, err = run_cli(capsys, "auth", "eacc", "--config", str(oauth_config), "--refresh-token", "-")
    assert route.call_count == 1
    assert code == 1 and "invalid_grant" in err and "nothing was stored" in err and TOKEN_URL in err
    assert "stored in" not in out and "rt.bogus" not in out + err
    assert stored_tokens(tmp_path) is None


def test_auth_on_a_fresh_install_under_systemd_credentials(capsys, oauth_config, tmp_path, monkeypatch):
    """The refresh-token credential auth is there to produce does not exist yet, other connections'
    credentials are not to be had in this shell (no $CREDENTIALS_DIRECTORY): auth still works,
    reading only its own connection's secrets (from the unit's credentials folder)."""
    import io

    import respx

    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "eacc_client_secret").write_text("csecret-0123456789\n")
    text = oauth_config.read_text().replace(
        'client_secret = "csecret-0123456789"',
        'client_secret = { credential = "eacc_client_secret" }\nrefresh_token = { credential = "eacc_refresh_token" }',
    )
    text += '\n[connections.other]\nconnector = "eaccounting"\naccess_token = { credential = "other_token" }\n'
    oauth_config.write_text(text, encoding="utf-8")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("APICENTERD_CREDENTIALS_DIR", str(creds))
    code, _, err = run_cli(capsys, "check", "--config", str(oauth_config))
    assert code == 2 and "eacc_refresh_token" in err and "other_token" in err  # the daemon would need them

    code, out, err = run_cli(capsys, "auth", "eacc", "--config", str(oauth_config))
    assert code == 0, err
    assert "http://127.0.0.1:9/connect/authorize?client_id=cid" in out  # from the connection's token_url
    with respx.mock() as router:
        refresh_answers(router, **{"rt-from-the-vendor": "rt-rotated"})
        monkeypatch.setattr("sys.stdin", io.StringIO("rt-from-the-vendor\n"))
        code, out, err = run_cli(capsys, "auth", "eacc", "--config", str(oauth_config), "--refresh-token", "-")
    assert code == 0, err
    assert stored_tokens(tmp_path)["refresh_token"] == "rt-rotated"
    assert "did not exist and was created" in out and "APICENTERD_STATE__PATH" in out
    assert "leave it out of [connections.eacc]" in out


def test_auth_stores_tokens_encrypted_when_state_has_a_token_key(capsys, oauth_config, tmp_path, monkeypatch):
    import io

    import respx

    oauth_config.write_text(
        oauth_config.read_text().replace("[state]\n", '[state]\ntoken_key = { env = "TEST_CLI_TOKEN_KEY" }\n'), encoding="utf-8"
    )
    monkeypatch.setenv("TEST_CLI_TOKEN_KEY", "cli-key-0123456789abcdef")
    monkeypatch.setattr("sys.stdin", io.StringIO("piped-refresh-token-3\n"))
    with respx.mock() as router:
        refresh_answers(router, **{"piped-refresh-token-3": "piped-rotated-3"})
        code, out, err = run_cli(capsys, "auth", "eacc", "--config", str(oauth_config), "--refresh-token", "-")
    assert code == 0, err
    row = stored_tokens(tmp_path)
    assert row["encrypted"] == "fernet" and "piped-r" not in json.dumps(row)
    assert "encrypted with [state] token_key" in out


def test_auth_code_exchange_uses_the_redirect_uri_of_the_consent_url(capsys, oauth_config, tmp_path):
    import urllib.parse

    import respx

    code, out, _ = run_cli(capsys, "auth", "eacc", "--config", str(oauth_config), "--redirect-uri", "http://127.0.0.1:9999/cb")
    url = next(line for line in out.splitlines() if "?client_id=" in line)
    state = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["state"][0]
    with respx.mock() as router:
        route = router.post(TOKEN_URL).mock(return_value=httpx_response(200, {"access_token": "a", "refresh_token": "r3-xxxx"}))
        code, _, err = run_cli(capsys, "auth", "eacc", "--config", str(oauth_config), "--code", f"http://127.0.0.1:9999/cb?code=C&state={state}")
    assert code == 0, err
    sent = urllib.parse.parse_qs(route.calls[0].request.content.decode())
    assert sent["redirect_uri"] == ["http://127.0.0.1:9999/cb"]


def test_reload_without_a_pid_it_can_find_asks_for_one(capsys, tmp_path):
    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text('[state]\npath = "state.db"\n')
    code, _, err = run_cli(capsys, "reload", "--config", str(cfg))
    assert code == 2 and "--pid" in err  # no daemon lock to read it from (or no daemon holds it)


def test_reload_of_a_process_that_is_gone_fails_with_a_message(capsys, tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text('[state]\npath = "state.db"\n')
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    code, _, err = run_cli(capsys, "reload", "--config", str(cfg), "--pid", str(gone.pid))
    assert code == 1 and f"no process {gone.pid}" in err


def test_reload_timeout_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reload", "--timeout", "0"])
    assert exc.value.code == 2 and "positive number of seconds" in capsys.readouterr().err


@pytest.mark.anyio
async def test_flows_run_first_signal_stops_between_records_second_cuts_off():
    import os
    import signal

    import anyio

    class Engine:
        stopped = 0

        def stop(self):
            self.stopped += 1

    engine, seen = Engine(), []
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            await tg.start(cli._stop_on_signals, engine, tg.cancel_scope, seen)
            os.kill(os.getpid(), signal.SIGTERM)
            while not engine.stopped:
                await anyio.sleep(0.01)
            assert not tg.cancel_scope.cancel_called  # the run goes on to the end of its record
            os.kill(os.getpid(), signal.SIGINT)
            await anyio.sleep_forever()  # cancelled by the second signal
    assert seen == [signal.SIGTERM, signal.SIGINT] and engine.stopped == 1


@pytest.mark.parametrize(
    "answer, expected",
    [
        ((400, {"error": "invalid_grant"}), "the vendor refused the code: HTTP 400"),
        ((200, {"access_token": "a-only"}), "the token response has no refresh_token"),
    ],
)
def test_auth_code_the_vendor_refuses_exits_1_with_its_reason(capsys, oauth_config, tmp_path, answer, expected):
    """The exchange goes through apicenterd.kit.exchange_code; its errors reach the operator as one line."""
    import respx

    state = consent_state(capsys, oauth_config)
    with respx.mock() as router:
        router.post(TOKEN_URL).mock(return_value=httpx_response(*answer))
        code, _, err = run_cli(capsys, "auth", "eacc", "--config", str(oauth_config), "--code", "C0DE", "--state", state)
    assert code == 1 and expected in err and "Traceback" not in err
    assert stored_tokens(tmp_path) is None


def test_flows_run_shows_failed_records_waiting_out_their_backoff(tmp_path, capsys, registry, memory, monkeypatch):
    """A failed record read again unchanged is 'waiting', not 'unchanged' (before: "unchanged 1,
    failed 0" while its dead letter was open)."""
    from fakes import product

    monkeypatch.setattr(cli, "_registry", lambda: registry)
    memory.put(product("BAD"), "1")
    memory.fail_create.add("BAD")
    cfg = memory_products_config(tmp_path)
    code, out, _ = run_cli(capsys, "flows", "run", "products", "--config", str(cfg))
    assert code == 3 and "failed 1" in out
    code, out, _ = run_cli(capsys, "flows", "run", "products", "--config", str(cfg))
    # nothing failed in this run (the record waits out its backoff): 0
    assert code == 0 and "unchanged 0, waiting 1, skipped 0, failed 0" in out
    code, out, _ = run_cli(capsys, "runs", "--config", str(cfg))
    assert "waiting=1" in out


def test_flows_run_exits_3_when_records_failed_in_the_run(tmp_path, capsys, registry, memory, monkeypatch):
    """A run that goes through but dead-letters records exits EXIT_RECORDS_FAILED (3), --json and
    --dry-run too; the same flow with nothing failing exits 0."""
    from fakes import product

    monkeypatch.setattr(cli, "_registry", lambda: registry)
    memory.put(product("GOOD"), "1")
    memory.put(product("BAD"), "2")
    memory.fail_create.add("BAD")
    cfg = memory_products_config(tmp_path)
    assert cli.EXIT_RECORDS_FAILED == 3
    code, out, _ = run_cli(capsys, "flows", "run", "products", "--dry-run", "--config", str(cfg))
    assert code == 0, out  # a dry run does not write, so the target does not reject it
    code, out, _ = run_cli(capsys, "flows", "run", "products", "--json", "--config", str(cfg))
    counts = json.loads(out)
    assert code == cli.EXIT_RECORDS_FAILED and counts["status"] == "ok" and counts["failed"] == 1 and counts["created"] == 1
    code, out, _ = run_cli(capsys, "dlq", "list", "--config", str(cfg))
    assert code == 0 and "BAD" in out
    memory.fail_create.discard("BAD")
    code, out, _ = run_cli(capsys, "dlq", "replay", "--flow", "products", "--config", str(cfg))
    code, out, _ = run_cli(capsys, "flows", "run", "products", "--json", "--config", str(cfg))
    assert code == 0 and json.loads(out)["failed"] == 0


@pytest.mark.parametrize(
    "connector, settings, consent",
    [
        (
            "eaccounting",
            {"base_url": "https://eaccountingapi-sandbox.test.vismaonline.com",
             "token_url": "https://identity-sandbox.test.vismaonline.com/connect/token"},
            "https://identity-sandbox.test.vismaonline.com/connect/authorize",
        ),
        ("eaccounting", {}, "https://identity.vismaonline.com/connect/authorize"),
        ("exact_online", {"region": "be"}, "https://start.exactonline.be/api/oauth2/auth"),
        ("exact_online", {"base_url": "http://127.0.0.1:8711"}, "http://127.0.0.1:8711/api/oauth2/auth"),
        ("quickbooks", {"environment": "sandbox", "realm_id": "1"}, "https://appcenter.intuit.com/connect/oauth2"),
        ("hubspot", {}, "https://app.hubspot.com/oauth/authorize"),
        ("hubspot", {"authorize_url": "https://app-eu1.hubspot.com/oauth/authorize"}, "https://app-eu1.hubspot.com/oauth/authorize"),
        ("visma_net", {}, "https://connect.visma.com/connect/authorize"),
    ],
)
def test_auth_builds_the_consent_url_from_the_connection_settings(capsys, tmp_path, connector, settings, consent):
    """The consent page is the connector's answer for these settings (Connector.oauth_consent_url):
    a sandbox token_url gets the sandbox's page, an Exact region its host."""
    import urllib.parse

    from apicenterd.registry import load_registry

    registry = load_registry()
    if connector not in registry.connectors:
        pytest.skip(f"connector {connector} is not installed")
    table = {"client_id": "cid", "client_secret": "csecret-0123456789", **settings}
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items())
    cfg = tmp_path / "apicenterd.toml"
    cfg.write_text(f'[state]\npath = "state.db"\n\n[connections.c]\nconnector = "{connector}"\n{body}\n', encoding="utf-8")
    code, out, err = run_cli(capsys, "auth", "c", "--config", str(cfg))
    assert code == 0, err
    url = next(line for line in out.splitlines() if "?client_id=" in line)
    assert url.split("?")[0] == consent
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["client_id"] == ["cid"] and query["response_type"] == ["code"]
