"""The read-only on-call commands need no secret and create nothing: under systemd credentials, in
a shell without $CREDENTIALS_DIRECTORY and with the daemon stopped, they read the state store;
a wrong state path is an error naming it, not a new empty database."""

from __future__ import annotations

import json

import fakes
import pytest

from apicenterd import cli

CONFIG = """
[daemon]
metrics_address = ""

[state]
path = "state.db"

[connections.src]
connector = "memsource"
base_url = { credential = "src_url" }

[connections.dst]
connector = "memtarget"
base_url = { credential = "dst_url" }

[connections.unused]
connector = "memtarget"
base_url = { credential = "not_there" }

[flows.products]
source = "src"
target = "dst"
entity = "products"
interval = "1h"
"""


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def setup(tmp_path, registry, monkeypatch):
    """The config with its credentials in a folder systemd would hand over, and no daemon."""
    monkeypatch.setattr(cli, "_registry", lambda: registry)
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "src_url").write_text("http://source.invalid\n")
    (creds / "dst_url").write_text("http://target.invalid\n")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("APICENTERD_CREDENTIALS_DIR", str(tmp_path / "empty"))  # not /etc/apicenterd/credentials
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("APICENTERD_STATE__PATH", raising=False)
    path = tmp_path / "apicenterd.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path, creds


def test_read_only_commands_need_no_credentials(setup, capsys, monkeypatch):
    path, creds = setup
    config = str(path)
    fakes.MemoryStore.put(fakes.product("A"), "1")
    fakes.MemoryStore.put(fakes.product("B"), "2")
    fakes.MemoryStore.fail_create.add("B")
    # a run as the daemon would do it, with its credentials (one connection's is missing: not needed here)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    code, out, err = run_cli(capsys, "flows", "run", "products", "--config", config)
    assert code == 3 and "created 1" in out and "failed 1" in out, err
    code, _, err = run_cli(capsys, "check", "--config", config)
    assert code == 2 and "connections.unused.base_url: " in err and "not_there" in err, err  # the daemon needs them all
    assert "is not an absolute" not in err  # the unresolved secret is named once, not also as a bad value

    monkeypatch.delenv("CREDENTIALS_DIRECTORY")  # the operator's shell, the daemon stopped
    code, out, err = run_cli(capsys, "runs", "--config", config, "--json")
    assert code == 0, err
    assert [r["trigger"] for r in json.loads(out)] == ["cli"]
    code, out, err = run_cli(capsys, "audit", "--config", config, "--json")
    assert code == 0 and {e["source_id"] for e in json.loads(out)} == {"A", "B"}, err
    code, out, err = run_cli(capsys, "dlq", "list", "--config", config, "--json")
    assert code == 0, err
    (letter,) = json.loads(out)
    code, out, err = run_cli(capsys, "dlq", "show", str(letter["id"]), "--config", config)
    assert code == 0 and json.loads(out)["source_id"] == "B", err
    code, out, err = run_cli(capsys, "flows", "list", "--config", config)
    assert code == 0 and "products" in out, err
    code, out, err = run_cli(capsys, "flows", "mapping", "products", "--config", config)
    assert code == 0 and "CANONICAL FIELD" in out, err
    code, out, err = run_cli(capsys, "state", "purge", "--config", config)
    assert code == 0 and "deleted 0 audit entries" in out, err
    assert "CREDENTIALS_DIRECTORY" not in err

    # acting without the daemon: only the flow's own connections are resolved; theirs are missing here
    code, _, err = run_cli(capsys, "flows", "run", "products", "--config", config)
    assert code == 2 and "connections.src.base_url: credential 'src_url'" in err and "not_there" not in err
    monkeypatch.setenv("APICENTERD_CREDENTIALS_DIR", str(creds))  # stands for /etc/apicenterd/credentials (sudo)
    fakes.MemoryStore.fail_create.clear()
    code, out, err = run_cli(capsys, "dlq", "replay", str(letter["id"]), "--config", config)
    assert code == 0 and "created 1" in out, err
    code, out, err = run_cli(capsys, "dlq", "discard", "--all", "--config", config)
    assert code == 0, err


@pytest.mark.parametrize(
    "argv",
    [
        ["runs"],
        ["audit"],
        ["dlq", "list"],
        ["dlq", "show", "1"],
        ["dlq", "discard", "--all"],
        ["dlq", "replay", "--all", "--local"],
        ["state", "purge"],
    ],
)
def test_a_wrong_state_path_is_named_and_not_created(setup, capsys, monkeypatch, argv):
    path, _ = setup
    code, out, err = run_cli(capsys, *argv, "--config", str(path))
    state = path.parent / "state.db"
    assert code == 2, out + err
    assert f"state file {state} does not exist ([state] path in {path})" in err and "nothing was created" in err
    assert not state.exists()
    elsewhere = path.parent / "var" / "state.db"
    monkeypatch.setenv("APICENTERD_STATE__PATH", str(elsewhere))
    code, _, err = run_cli(capsys, *argv, "--config", str(path))
    assert code == 2 and f"state file {elsewhere} does not exist ($APICENTERD_STATE__PATH" in err
    assert not elsewhere.parent.exists()
