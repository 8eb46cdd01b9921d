"""config: every mistake named by its path, all reported at once; environment overrides; secrets by reference."""

from __future__ import annotations

import types
import uuid
from pathlib import Path

import fakes
import pytest
from pydantic import SecretStr

from apicenterd import ConfigError, Connector, ConnectorSettings, Entity, Product, Source, hookimpl
from apicenterd.config import load, read_config, resolve
from apicenterd.flows import ProductOptions, StockOptions
from apicenterd.observe.logs import REDACTED, redactor
from apicenterd.registry import load_registry


class VaultSettings(ConnectorSettings):
    api_key: SecretStr
    client_id: str = "public"


class VaultProducts(Source[Product]):
    async def changes(self, since):  # pragma: no cover - never run here
        yield


class Vault(Connector):
    """A connector with a required secret setting; reads products only."""

    name = "vault"
    Settings = VaultSettings
    sources = {Entity.PRODUCTS: VaultProducts}


def _vault_plugin() -> types.ModuleType:
    module = types.ModuleType("vault_plugin")

    @hookimpl
    def register_connectors(register):
        register(Vault)

    module.register_connectors = register_connectors
    return module


@pytest.fixture
def reg():
    fakes.MemoryStore.reset()
    return load_registry([("fakes", fakes), ("vault", _vault_plugin())], entry_points=False)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No APICENTERD_* variable from the developer's shell leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("APICENTERD_"):
            monkeypatch.delenv(name)


GOOD = """
[state]
path = "state.db"

[connections.src]
connector = "memsource"

[connections.dst]
connector = "memtarget"

[flows.products]
source = "src"
target = "dst"
entity = "products"
interval = "1m"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "apicenterd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str, reg) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, text), reg)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


def base(**flow) -> dict:
    raw = {
        "connections": {"src": {"connector": "memsource"}, "dst": {"connector": "memtarget"}},
        "flows": {"f": {"source": "src", "target": "dst", "entity": "products", "interval": "1m"}},
    }
    raw["flows"]["f"].update(flow)
    return raw


def resolve_problems(raw: dict, reg) -> list[str]:
    from apicenterd.config import Config

    with pytest.raises(ConfigError) as info:
        resolve(Config(**raw), reg, Path("/etc/apicenterd.toml"))
    return info.value.problems


def shape_problems(tmp_path: Path, raw_toml: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        read_config(write(tmp_path, raw_toml))
    return info.value.problems


# --- a good file -----------------------------------------------------------------------------


def test_good_file_resolves(tmp_path, reg):
    resolved = load(write(tmp_path, GOOD), reg)
    assert set(resolved.connections) == {"src", "dst"}
    assert resolved.connections["src"].connector is fakes.MemorySource
    flow = resolved.flows["products"]
    assert flow.schedule.interval == 60
    assert isinstance(flow.options, ProductOptions)
    assert resolved.state_path == (tmp_path / "state.db").resolve()


# --- file level -------------------------------------------------------------------------------


def test_missing_file_is_named(tmp_path, reg):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load(path, reg)
    assert info.value.problems == [f"{path}: no such file"]


def test_invalid_toml_is_named_with_position(tmp_path):
    problems = shape_problems(tmp_path, "[state\npath = 1\n")
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'apicenterd.toml'}: not valid TOML")
    assert "line 1" in problems[0]


def test_unreadable_file_is_named(tmp_path):
    path = tmp_path / "apicenterd.toml"
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ConfigError) as info:
        read_config(path)
    assert info.value.problems[0].startswith(f"{path}: cannot read")


# --- unknown keys at every level ---------------------------------------------------------------


@pytest.mark.parametrize(
    "old, new, path",
    [
        ("[state]", "[daemon]\nloglevel = 'info'\n[state]", "daemon.loglevel"),
        ('path = "state.db"', 'path = "state.db"\nfile = "x.db"', "state.file"),
        ("[state]", "[bogus]\nx = 1\n[state]", "bogus"),
        ('source = "src"', 'source = "src"\nsorce = "src"', "flows.products.sorce"),
    ],
)
def test_unknown_keys_are_named(tmp_path, old, new, path):
    assert shape_problems(tmp_path, GOOD.replace(old, new, 1)) == [f"{path}: unknown setting"]


def test_unknown_connection_setting_is_named_by_connector_model(tmp_path, reg):
    text = GOOD.replace('connector = "memsource"', 'connector = "memsource"\nbase_ulr = "http://x"')
    assert problems_of(tmp_path, text, reg) == ["connections.src.base_ulr: unknown setting"]


def test_missing_required_connector_setting(tmp_path, reg):
    text = GOOD + '\n[connections.v]\nconnector = "vault"\nbase_url = "http://v"\n'
    assert problems_of(tmp_path, text, reg) == ["connections.v.api_key: required setting is missing"]


def test_bad_connector_setting_value(tmp_path, reg):
    text = GOOD.replace('connector = "memsource"', 'connector = "memsource"\ntimeout = -1')
    problems = problems_of(tmp_path, text, reg)
    assert len(problems) == 1 and problems[0].startswith("connections.src.timeout: ")


def test_unknown_connector(tmp_path, reg):
    text = GOOD.replace('connector = "memtarget"', 'connector = "memtargett"')
    problems = problems_of(tmp_path, text, reg)
    assert problems == [
        "connections.dst.connector: no connector named 'memtargett' (installed: memsource, memtarget, vault)"
    ]


# --- flows ------------------------------------------------------------------------------------


def test_undefined_connection_names_the_defined_ones(reg):
    raw = base(target="eacc")
    assert resolve_problems(raw, reg) == ['flows.f.target: connection "eacc" is not defined (defined: dst, src)']


def test_source_cannot_read_entity(reg):
    raw = base(entity="journal")
    problems = resolve_problems(raw, reg)
    assert (
        'flows.f.entity: connector "memsource" (connection "src") cannot read journal (it reads: customers, orders, products, shipments, stock)'
        in problems
    )
    assert (
        'flows.f.entity: connector "memtarget" (connection "dst") cannot write journal '
        "(it writes: customers, invoices, orders, products, stock)" in problems
    )


def test_target_cannot_write_entity(reg):
    raw = base(target="v")
    raw["connections"]["v"] = {"connector": "vault", "base_url": "http://v", "api_key": "k" * 8}
    problems = resolve_problems(raw, reg)
    assert problems == [
        'flows.f.entity: connector "vault" (connection "v") cannot write products (it writes: nothing)'
    ]


def test_source_and_target_the_same(reg):
    assert resolve_problems(base(target="src"), reg)[-1] == (
        "flows.f.target: source and target are the same connection 'src'"
    )


@pytest.mark.parametrize(
    "schedule, where, words",
    [
        ({"interval": "abc"}, "interval", "is not a duration"),
        ({"interval": "0s"}, "interval", "longer than zero"),
        ({"interval": None, "cron": "61 * * * *"}, "cron", "is not valid"),
        ({"cron": "*/5 * * * *"}, "cron", "exactly one"),
        ({"interval": None}, "interval", "exactly one"),
    ],
)
def test_bad_schedule(reg, schedule, where, words):
    raw = base()
    raw["flows"]["f"].update(schedule)
    raw["flows"]["f"] = {k: v for k, v in raw["flows"]["f"].items() if v is not None}
    problems = resolve_problems(raw, reg)
    assert len(problems) == 1
    assert problems[0].startswith(f"flows.f.{where}: ") and words in problems[0]


def test_create_only_fields_unknown_field(reg):
    problems = resolve_problems(base(create_only_fields=["name", "descripton"]), reg)
    assert len(problems) == 1
    assert problems[0].startswith("flows.f.create_only_fields[1]: products have no field 'descripton'")


def test_filter_on_unknown_field(reg):
    problems = resolve_problems(base(filters=[{"field": "active"}, {"field": "colour.name", "value": "x"}]), reg)
    assert problems == ["flows.f.filters[1].field: products have no field 'colour'"]


@pytest.mark.parametrize(
    "flt, where, words",
    [
        ('{ field = "active", op = "like", value = 1 }', "flows.products.filters[0].op", "Input should be"),
        ('{ field = "sku", op = "in", value = "A" }', "flows.products.filters[0]", "needs a list"),
        ('{ field = "price_excl_tax", op = "gt", value = "ten" }', "flows.products.filters[0]", "needs a number"),
        ('{ field = "name", op = "matches", value = "(" }', "flows.products.filters[0]", "not a regular expression"),
        ('{ field = "name", value = 1, vlaue = 2 }', "flows.products.filters[0].vlaue", "unknown setting"),
        ('{ op = "eq", value = 1 }', "flows.products.filters[0].field", "required setting is missing"),
    ],
)
def test_bad_filters(tmp_path, flt, where, words):
    problems = shape_problems(tmp_path, GOOD + f"filters = [{flt}]\n")
    assert len(problems) == 1
    assert problems[0].startswith(f"{where}: ") and words in problems[0]


def test_bad_filter_through_the_file(tmp_path):
    text = GOOD + '\n[[flows.products.filters]]\nfield = "sku"\nop = "in"\nvalue = "A"\n'
    problems = shape_problems(tmp_path, text)
    assert len(problems) == 1 and problems[0].startswith("flows.products.filters[0]: ")


def test_stock_options_validated(reg):
    ok = resolve(
        __import__("apicenterd.config", fromlist=["Config"]).Config(
            **base(entity="stock", options={"available": "on_hand", "allow_negative": True})
        ),
        reg,
        Path("/x.toml"),
    )
    assert isinstance(ok.flows["f"].options, StockOptions)
    assert ok.flows["f"].options.available == "on_hand"
    problems = resolve_problems(base(entity="stock", options={"available": "all", "manage_stok": False}), reg)
    assert sorted(p.split(":")[0] for p in problems) == ["flows.f.options.available", "flows.f.options.manage_stok"]
    assert "flows.f.options.manage_stok: unknown setting" in problems


def test_product_options_reject_stock_options(reg):
    assert resolve_problems(base(options={"allow_negative": True}), reg) == [
        "flows.f.options.allow_negative: unknown setting"
    ]


def test_every_mistake_is_reported_at_once(tmp_path, reg):
    text = """
[daemon]
log_level = "loud"

[connections.src]
connector = "memsource"
bogus = 1

[connections.dst]
connector = "nothere"

[flows.a]
source = "src"
target = "eacc"
entity = "products"
interval = "soon"
create_only_fields = ["nope"]

[flows.b]
source = "src"
target = "dst"
entity = "stock"
cron = "not cron"
options = { available = "guess" }
"""
    # a mistake in the file's shape (daemon.log_level) does not hide the others (before: it was the only one said)
    wheres = [p.split(":")[0] for p in problems_of(tmp_path, text, reg)]
    assert wheres == [
        "daemon.log_level",
        "connections.src.bogus",
        "connections.dst.connector",
        "flows.a.target",
        "flows.a.interval",
        "flows.a.create_only_fields[0]",
        "flows.b.cron",
        "flows.b.options.available",
    ]


# --- secrets by reference ----------------------------------------------------------------------


def vault_toml(api_key: str) -> str:
    return GOOD + f'\n[connections.v]\nconnector = "vault"\nbase_url = "http://v"\napi_key = {api_key}\n'


def test_secret_from_env(tmp_path, reg, monkeypatch):
    secret = f"env-{uuid.uuid4().hex}"
    monkeypatch.setenv("VAULT_KEY", secret)
    resolved = load(write(tmp_path, vault_toml('{ env = "VAULT_KEY" }')), reg)
    assert resolved.connections["v"].settings.api_key.get_secret_value() == secret
    assert secret in resolved.secrets


def test_secret_from_file(tmp_path, reg):
    secret = f"file-{uuid.uuid4().hex}"
    (tmp_path / "key").write_text(secret + "\n")
    resolved = load(write(tmp_path, vault_toml(f'{{ file = "{tmp_path / "key"}" }}')), reg)
    assert resolved.connections["v"].settings.api_key.get_secret_value() == secret


def test_secret_from_systemd_credential(tmp_path, reg, monkeypatch):
    secret = f"cred-{uuid.uuid4().hex}"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "vault-key").write_text(secret)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    resolved = load(write(tmp_path, vault_toml('{ credential = "vault-key" }')), reg)
    assert resolved.connections["v"].settings.api_key.get_secret_value() == secret


def test_credential_without_credentials_directory(tmp_path, reg, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    problems = problems_of(tmp_path, vault_toml('{ credential = "vault-key" }'), reg)
    assert len(problems) == 1
    assert problems[0].startswith("connections.v.api_key: credential 'vault-key' needs $CREDENTIALS_DIRECTORY")


def test_missing_env_var_is_named(tmp_path, reg, monkeypatch):
    monkeypatch.delenv("VAULT_KEY_NOT_SET", raising=False)
    problems = problems_of(tmp_path, vault_toml('{ env = "VAULT_KEY_NOT_SET" }'), reg)
    assert problems == ["connections.v.api_key: environment variable VAULT_KEY_NOT_SET is not set"]


def test_unreadable_secret_file_is_named(tmp_path, reg):
    missing = tmp_path / "no-such-key"
    problems = problems_of(tmp_path, vault_toml(f'{{ file = "{missing}" }}'), reg)
    assert len(problems) == 1
    assert problems[0].startswith(f"connections.v.api_key: cannot read secret file {missing}")


def test_empty_reference(tmp_path, reg):
    problems = problems_of(tmp_path, vault_toml('{ env = "" }'), reg)
    assert problems == ["connections.v.api_key: env reference must be a non-empty string"]


def test_resolved_secrets_are_redacted_in_logs(tmp_path, reg, monkeypatch):
    secret = f"redact-{uuid.uuid4().hex}"
    client = f"client-{uuid.uuid4().hex}"
    monkeypatch.setenv("VAULT_KEY", secret)
    monkeypatch.setenv("VAULT_CLIENT", client)
    event = {"event": f"calling with {secret}", "nested": [f"id {client}"]}
    assert redactor.scrub(event) == event  # not known before the config is loaded
    text = vault_toml('{ env = "VAULT_KEY" }') + 'client_id = { env = "VAULT_CLIENT" }\n'
    load(write(tmp_path, text), reg)
    assert redactor.scrub(event) == {"event": f"calling with {REDACTED}", "nested": [f"id {REDACTED}"]}


def test_secrets_not_registered_when_config_fails(tmp_path, reg, monkeypatch):
    secret = f"never-{uuid.uuid4().hex}"
    monkeypatch.setenv("VAULT_KEY", secret)
    text = vault_toml('{ env = "VAULT_KEY" }').replace('target = "dst"', 'target = "nowhere"')
    problems_of(tmp_path, text, reg)
    assert redactor.scrub(secret) == secret


# --- environment overrides -----------------------------------------------------------------------


def test_env_overrides_state_path_and_log_level(tmp_path, reg, monkeypatch):
    text = GOOD.replace('path = "state.db"', 'path = "state.db"\naudit_retention_days = 7')
    monkeypatch.setenv("APICENTERD_STATE__PATH", str(tmp_path / "elsewhere.db"))
    monkeypatch.setenv("APICENTERD_DAEMON__LOG_LEVEL", "debug")
    config = read_config(write(tmp_path, text))
    assert config.state.path == tmp_path / "elsewhere.db"
    assert config.daemon.log_level == "debug"
    assert config.state.audit_retention_days == 7  # the rest of the table still comes from the file


def test_env_overrides_nested_connection_setting(tmp_path, reg, monkeypatch):
    text = GOOD.replace('connector = "memsource"', 'connector = "memsource"\nbase_url = "http://file"\ntimeout = 5')
    monkeypatch.setenv("APICENTERD_CONNECTIONS__SRC__BASE_URL", "http://env")
    resolved = load(write(tmp_path, text), reg)
    settings = resolved.connections["src"].settings
    assert settings.base_url == "http://env"
    assert settings.timeout == 5  # other settings of that connection are kept
    assert resolved.connections["src"].connector is fakes.MemorySource


def test_env_override_matches_connection_name_whatever_its_case(tmp_path, reg, monkeypatch):
    text = GOOD.replace("connections.src", "connections.SalesPOS").replace('source = "src"', 'source = "SalesPOS"')
    monkeypatch.setenv("APICENTERD_CONNECTIONS__SALESPOS__BASE_URL", "http://env")
    resolved = load(write(tmp_path, text), reg)
    assert set(resolved.connections) == {"SalesPOS", "dst"}
    assert resolved.connections["SalesPOS"].settings.base_url == "http://env"


def test_env_override_value_is_validated(tmp_path, reg, monkeypatch):
    monkeypatch.setenv("APICENTERD_DAEMON__LOG_LEVEL", "loud")
    problems = shape_problems(tmp_path, GOOD)
    # said of the variable, not of the file (before: "daemon.log_level: ..." sent people to the file)
    assert problems == ["environment APICENTERD_DAEMON__LOG_LEVEL: daemon.log_level: Input should be 'debug', 'info', 'warning' or 'error'"]


def test_env_override_that_does_not_parse_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("APICENTERD_DAEMON", "{not json")
    problems = shape_problems(tmp_path, GOOD)
    assert len(problems) == 1 and problems[0].startswith("environment: ") and "daemon" in problems[0]


def test_unrelated_apicenterd_variables_are_not_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("APICENTERD_LOAD_PLUGINS", "fakes")
    monkeypatch.setenv("APICENTERD_CONFIG", "/etc/apicenterd.toml")
    assert read_config(write(tmp_path, GOOD)).state.path == Path("state.db")


# --- values that parse but make no sense (issue 9) -----------------------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "+inf"])
@pytest.mark.parametrize(
    "table, key, where",
    [
        ("[daemon]", "shutdown_timeout", "daemon.shutdown_timeout"),
        ("[daemon]", "circuit_recovery_seconds", "daemon.circuit_recovery_seconds"),
        ("[alerts]", "timeout", "alerts.timeout"),
    ],
)
def test_no_float_setting_takes_inf_or_nan(tmp_path, table, key, where, value):
    problems = shape_problems(tmp_path, f"{table}\n{key} = {value}\n" + GOOD)
    assert problems == [f"{where}: Input should be a finite number"]


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_connector_float_settings_take_no_inf_or_nan(tmp_path, reg, value):
    text = GOOD.replace('connector = "memsource"', f'connector = "memsource"\ntimeout = {value}')
    assert problems_of(tmp_path, text, reg) == ["connections.src.timeout: Input should be a finite number"]


def test_plugin_settings_follow_the_same_rules_without_declaring_them():
    class Acme(ConnectorSettings):
        base_url: str = "https://acme.example"
        backoff: float = 1.0
        page_size: int = 10
        callback_url: str | None = None

    from pydantic import ValidationError

    for bad in ({"backoff": float("nan")}, {"page_size": True}, {"callback_url": "acme.example/cb"}, {"base_url": "acme"}):
        with pytest.raises(ValidationError):
            Acme(**bad)
    assert Acme(callback_url="", page_size="20").page_size == 20  # "" leaves an optional URL unset; strings still convert


@pytest.mark.parametrize(
    "text, where",
    [
        ("[state]\naudit_retention_days = true\n", "state.audit_retention_days"),
        ("[state]\ndead_letter_retention_days = false\n", "state.dead_letter_retention_days"),
        ("[daemon]\ncircuit_failure_threshold = true\n", "daemon.circuit_failure_threshold"),
        ("[daemon]\nshutdown_timeout = true\n", "daemon.shutdown_timeout"),
        ('[alerts.email]\nsmtp_host = "h"\nsmtp_port = true\nfrom = "a@b"\nto = ["c@d"]\n', "alerts.email.smtp_port"),
    ],
)
def test_a_boolean_is_not_a_number(tmp_path, text, where):
    problems = shape_problems(tmp_path, text)
    assert len(problems) == 1 and problems[0].startswith(f"{where}: expected a number, got the boolean ")


def test_numbers_from_the_environment_still_convert(tmp_path, monkeypatch):
    monkeypatch.setenv("APICENTERD_STATE__AUDIT_RETENTION_DAYS", "7")
    monkeypatch.setenv("APICENTERD_DAEMON__SHUTDOWN_TIMEOUT", "2.5")
    config = read_config(write(tmp_path, GOOD))
    assert config.state.audit_retention_days == 7 and config.daemon.shutdown_timeout == 2.5


@pytest.mark.parametrize(
    "interval, words",
    [
        ("true", "got the boolean true"),
        ("1e-7", 'has no unit: write "1e-07s" (seconds), "1e-07m" (minutes)'),
        ("15", 'has no unit: write "15s" (seconds), "15m" (minutes) or "15h" (hours)'),
        ('"15"', "'15' has no unit"),
        ('"0.5s"', "must be between 1s and 365d"),
        ('"366d"', "must be between 1s and 365d"),
        ('"1e300"', "has no unit"),
        ("inf", "got inf"),
        ("nan", "got nan"),
        ('"inf"', "is not a duration"),
        ("[1]", "got [1]"),
        ("1979-05-27", "got datetime.date"),
    ],
)
def test_bad_interval_values(tmp_path, reg, interval, words):
    problems = problems_of(tmp_path, GOOD.replace('interval = "1m"', f"interval = {interval}"), reg)
    assert len(problems) == 1 and problems[0].startswith("flows.products.interval: ") and words in problems[0]


@pytest.mark.parametrize("interval", ['"1s"', '"365d"', '"1h30m"', '"0.5m"'])
def test_interval_bounds_are_inclusive(tmp_path, reg, interval):
    assert "products" in load(write(tmp_path, GOOD.replace('interval = "1m"', f"interval = {interval}")), reg).flows


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4 *", "0 0 1 1 * 0 2001"])
def test_cron_that_never_fires(tmp_path, reg, cron):
    problems = problems_of(tmp_path, GOOD.replace('interval = "1m"', f'cron = "{cron}"'), reg)
    assert problems == [
        f"flows.products.cron: cron expression {cron!r} never fires (no time matches it in the next 10 years; "
        "e.g. 30 or 31 February)"
    ]


def test_cron_of_29_february_fires(tmp_path, reg):
    assert load(write(tmp_path, GOOD.replace('interval = "1m"', 'cron = "0 3 29 2 *"')), reg).flows["products"].schedule.cron


@pytest.mark.parametrize(
    "transform, words",
    [
        ('["truncate", -5]', "transform 'truncate': length must be at least 1, got -5"),
        ('["truncate", 0]', "transform 'truncate': length must be at least 1, got 0"),
        ('["truncate", 2.5]', "transform 'truncate': length must be a whole number, got 2.5"),
        ('["truncate", true]', "transform 'truncate': length must be a whole number, got True"),
        ('"truncate"', "transform 'truncate' takes (length): missing a required argument: 'length'"),
        ('["truncate", 5, 6]', "transform 'truncate' takes (length): too many positional arguments"),
        ('["number", -1]', "transform 'number': places must be from 0 to 10, got -1"),
        ('["number", 99]', "transform 'number': places must be from 0 to 10, got 99"),
        ('["replace", "-"]', "transform 'replace' takes (old, new): missing a required argument: 'new'"),
    ],
)
def test_transform_arguments_are_checked(tmp_path, reg, transform, words):
    text = GOOD + f'\n[[flows.products.map]]\nfield = "name"\ntransforms = [{transform}]\n'
    assert problems_of(tmp_path, text, reg) == [f"flows.products.map[0].transforms[0]: {words}"]


def test_transform_arguments_from_fields_are_checked_per_record(tmp_path, reg):
    text = GOOD + '\n[[flows.products.map]]\nfield = "name"\ntransforms = [["truncate", "$sku"], ["number", "$sku"]]\n'
    assert load(write(tmp_path, text), reg).flows["products"].mapper.problems() == []


def test_a_map_path_through_a_list_needs_star_or_an_index(tmp_path, reg):
    # "attributes.name" used to pass `check` and then fail every record at run time
    text = GOOD + '\n[[flows.products.map]]\nfield = "attributes.name"\nvalue = "x"\n'
    assert problems_of(tmp_path, text, reg) == [
        "flows.products.map[0].field: Product field 'attributes' is a list: "
        "write 'attributes.*.name' (every item) or an index ('attributes.0.name')"
    ]
    fixed = GOOD + '\n[[flows.products.map]]\nfield = "attributes.*.name"\nvalue = "x"\n'
    assert load(write(tmp_path, fixed), reg).flows["products"].mapper.problems() == []


@pytest.mark.parametrize(
    "url, words",
    [
        ("not a url", "not an absolute http:// or https:// URL"),
        ("http://h/a b", "white space"),
        ("example.com/api", "not an absolute http:// or https:// URL"),
        ("file:///etc/passwd", "not an absolute http:// or https:// URL"),
        ("https://", "has no host name"),
        ("http://[::1", "not a valid URL"),
        ("http://h:port", "not a valid URL"),
    ],
)
def test_base_url_must_be_an_http_url_with_a_host(tmp_path, reg, url, words):
    text = vault_toml('"k"').replace('base_url = "http://v"', f'base_url = "{url}"')
    problems = problems_of(tmp_path, text, reg)
    assert len(problems) == 1 and problems[0].startswith("connections.v.base_url: ") and words in problems[0]


@pytest.mark.parametrize("url", ["http://v", "https://api.example.com/v2/", "http://127.0.0.1:8702", "HTTPS://[::1]:443/x"])
def test_good_base_urls(tmp_path, reg, url):
    text = vault_toml('"k"').replace('base_url = "http://v"', f'base_url = "{url}"')
    assert load(write(tmp_path, text), reg).connections["v"].settings.base_url == url


def test_webhook_url_must_be_an_http_url_and_empty_means_off(tmp_path):
    problems = shape_problems(tmp_path, '[alerts]\nwebhook_url = "hooks.example.com/x"\n')
    assert len(problems) == 1 and problems[0].startswith("alerts.webhook_url: ")
    assert read_config(write(tmp_path, '[alerts]\nwebhook_url = ""\n')).alerts.webhook_url == ""


@pytest.mark.parametrize("key", ["_env_file", "_secrets_dir", "_env_prefix", "_cli_parse_args"])
def test_underscore_keys_are_not_settings_arguments(tmp_path, key):
    # pydantic-settings takes Config(_env_file=...) as its own arguments: from the file they are unknown settings
    assert shape_problems(tmp_path, f'{key} = "x"\n' + GOOD) == [f"{key}: unknown setting"]


# --- secret files that are not secrets -----------------------------------------------------------


@pytest.mark.parametrize("content", ["", "\n", "  \n\t\n"])
def test_empty_secret_file(tmp_path, reg, content):
    key = tmp_path / "key"
    key.write_text(content)
    problems = problems_of(tmp_path, vault_toml(f'{{ file = "{key}" }}'), reg)
    assert problems == [f"connections.v.api_key: secret file {key} is empty"]


def test_secret_file_that_is_a_directory(tmp_path, reg):
    problems = problems_of(tmp_path, vault_toml(f'{{ file = "{tmp_path}" }}'), reg)
    assert problems == [f"connections.v.api_key: secret file {tmp_path} is not a regular file (a directory)"]


def test_secret_file_that_is_a_fifo_is_refused_without_opening_it(tmp_path, reg):
    import os
    import threading

    fifo = tmp_path / "key"
    os.mkfifo(fifo)
    result: list = []
    # in a thread: a hang (opening a FIFO nobody writes to) shows as a failed join, not a stuck suite
    worker = threading.Thread(target=lambda: result.append(problems_of(tmp_path, vault_toml(f'{{ file = "{fifo}" }}'), reg)), daemon=True)
    worker.start()
    worker.join(timeout=120)
    if worker.is_alive():  # unblock the reader so the thread can end, then fail
        with open(fifo, "w"):
            pass
        pytest.fail("reading the secret FIFO blocked")
    assert result == [[f"connections.v.api_key: secret file {fifo} is not a regular file (a FIFO)"]]


def test_secret_file_that_is_a_device(tmp_path, reg):
    problems = problems_of(tmp_path, vault_toml('{ file = "/dev/zero" }'), reg)
    assert problems == ["connections.v.api_key: secret file /dev/zero is not a regular file (a character device)"]


def test_huge_secret_file(tmp_path, reg):
    from apicenterd.config import MAX_SECRET_BYTES

    key = tmp_path / "key"
    key.write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    problems = problems_of(tmp_path, vault_toml(f'{{ file = "{key}" }}'), reg)
    assert problems == [f"connections.v.api_key: secret file {key} is larger than {MAX_SECRET_BYTES} bytes; is it the right file?"]
    key.write_bytes(b"x" * MAX_SECRET_BYTES)
    assert load(write(tmp_path, vault_toml(f'{{ file = "{key}" }}')), reg).connections["v"].settings.api_key


def test_secret_file_that_is_not_text(tmp_path, reg):
    key = tmp_path / "key"
    key.write_bytes(b"\xff\xfe\x00key")
    problems = problems_of(tmp_path, vault_toml(f'{{ file = "{key}" }}'), reg)
    assert problems == [f"connections.v.api_key: secret file {key} is not UTF-8 text"]


def test_credential_that_is_empty_names_the_file(tmp_path, reg, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "vault-key").write_text("")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    problems = problems_of(tmp_path, vault_toml('{ credential = "vault-key" }'), reg)
    assert problems == [f"connections.v.api_key: secret file {creds / 'vault-key'} is empty"]


def test_empty_environment_secret(tmp_path, reg, monkeypatch):
    monkeypatch.setenv("VAULT_KEY", "  ")
    problems = problems_of(tmp_path, vault_toml('{ env = "VAULT_KEY" }'), reg)
    assert problems == ["connections.v.api_key: environment variable VAULT_KEY is empty"]


# --- parser failures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["a = " + "[" * 5000 + "]" * 5000, "a = " + "{b = " * 3000 + "1" + "}" * 3000, "a = " + "[" * 900 + "]" * 900],
    ids=["arrays-5000", "inline-tables-3000", "arrays-900"],
)
def test_deeply_nested_toml_is_a_config_error(tmp_path, text):
    problems = shape_problems(tmp_path, text + "\n")
    assert problems == [f"{tmp_path / 'apicenterd.toml'}: not valid TOML: arrays or tables nested too deeply"]


def test_nested_values_that_parse_are_checked(tmp_path, reg):
    nested = "[" * 200 + "]" * 200
    problems = problems_of(tmp_path, GOOD + f"\n[flows.products.options]\nx = {nested}\n", reg)
    assert problems == ["flows.products.options.x: unknown setting"]
