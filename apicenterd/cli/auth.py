"""The ``auth`` command: OAuth2 consent URL, code exchange, refresh token."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from .. import cli as _cli
from ..config import Resolved
from ..errors import ConnectorError
from ..observe import logs
from . import Usage, _load, _with_store, terminal_safe

AUTH_STATE_TTL = 3600.0
"""Seconds a consent URL's ``state`` stays valid for ``auth --code``."""


def _auth_state_file(resolved: Resolved) -> Path:
    """Where ``auth`` keeps the ``state`` of the consent URLs it printed (0600, beside the state db)."""
    return Path(f"{resolved.state_path}.auth-state")


def _read_auth_states(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise Usage(f"{path}: cannot read the pending authorisations ({exc}); delete it and run `apicenterd auth` again") from None
    return data if isinstance(data, dict) else {}


def _write_auth_states(path: Path, states: dict[str, Any]) -> None:
    """Replace ``path`` atomically with ``states``, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(states, out)
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _read_refresh_token(args: argparse.Namespace) -> str:
    """The refresh token from ``--refresh-token -`` (stdin) or ``--refresh-token-file``; a literal
    token on the command line is refused: every user on the host sees it in ``ps``, and it stays in
    the shell's history."""
    if args.refresh_token_file is not None:
        try:
            token = Path(args.refresh_token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise Usage(f"--refresh-token-file: cannot read {args.refresh_token_file}: {getattr(exc, 'strerror', None) or exc}") from None
        where = args.refresh_token_file
    elif args.refresh_token == "-":  # noqa: S105 - "-" means standard input, not a token
        if sys.stdin is None:
            raise Usage("--refresh-token -: there is no standard input to read the token from")
        if sys.stdin.isatty():
            import getpass

            token = getpass.getpass("refresh token (not shown): ").strip()
        else:
            token = sys.stdin.read().strip()
        where = "standard input"
    else:
        raise Usage(
            "--refresh-token: a token on the command line is refused: other users see it in `ps` and it stays in your "
            "shell history. Pipe it in with `--refresh-token -` (e.g. `apicenterd auth CONNECTION --refresh-token - "
            "< token.txt`), or use `--refresh-token-file PATH`"
        )
    if not token:
        raise Usage(f"--refresh-token: {where} holds no token")
    if any(c.isspace() for c in token):
        raise Usage(f"--refresh-token: what {where} holds is not one token (it contains whitespace)")
    return token


def _check_auth_state(args: argparse.Namespace, resolved: Resolved, given: str | None) -> dict[str, Any]:
    """The ``state`` that came back with the code must be the one ``auth`` printed for this
    connection, less than :data:`AUTH_STATE_TTL` ago; else a Usage error (nothing is stored).
    Returns the pending request (``state``, ``expires_at``, ``redirect_uri``)."""
    import hmac

    if not given:
        raise Usage(
            "the code cannot be checked against the consent request: pass the whole URL the consent page redirected "
            "to (--code 'http://...?code=...&state=...'), or the bare code with --state and that URL's state parameter"
        )
    pending = _read_auth_states(_auth_state_file(resolved)).get(args.connection)
    again = f"run `apicenterd auth {args.connection}` for a new consent URL"
    if not isinstance(pending, dict) or not isinstance(pending.get("state"), str):
        raise Usage(f"no consent URL is pending for connection {args.connection!r} (or it was used already): {again}")
    if not hmac.compare_digest(pending["state"].encode(), given.encode()):
        raise Usage(
            f"the state in the redirect does not match the consent URL printed for {args.connection!r}: this code was not "
            f"requested by that URL (a forged or stale link?); nothing was stored; {again}"
        )
    if time.time() > float(pending.get("expires_at") or 0):
        raise Usage(
            f"the consent URL for {args.connection!r} expired (valid {AUTH_STATE_TTL / 60:.0f} minutes); nothing was stored; {again}"
        )
    return pending


def _forget_auth_state(resolved: Resolved, connection: str) -> None:
    path = _auth_state_file(resolved)
    states = _read_auth_states(path)
    if states.pop(connection, None) is not None:
        _write_auth_states(path, states)


def cmd_auth(args: argparse.Namespace) -> int:
    """Authorise an OAuth2 connection: print the consent URL (its state remembered), or exchange a
    code whose state matches, or store a refresh token read from stdin or a file once the vendor
    took it. Only this connection's secrets are read, and never its ``refresh_token`` (the setting
    this command produces): it works on a fresh install, outside systemd."""
    import functools
    import secrets as pysecrets
    import urllib.parse

    from ..kit import authorize_url, exchange_code

    resolved = _load(args.config, _cli._registry(), secrets_of={args.connection}, leave_out={"refresh_token"})
    conn = resolved.connections.get(args.connection)
    if conn is None:
        raise Usage(f"no connection named {args.connection!r} (defined: {', '.join(sorted(resolved.connections)) or 'none'})")
    settings: Any = conn.settings  # any settings model with the three fields checked here (e.g. kit.OAuth2Settings)
    needed = [f for f in ("token_url", "client_id", "client_secret") if not getattr(settings, f, None)]
    if needed:
        raise Usage(f"connection {args.connection!r} ({conn.connector.name}) is not OAuth2: it has no {', '.join(needed)}")
    existed = resolved.config.state.url is not None or os.path.lexists(resolved.state_path)

    if args.refresh_token is not None or args.refresh_token_file is not None:
        token = _read_refresh_token(args)
        logs.redactor.learn(f"auth:{args.connection}", [token])
        try:
            anyio.run(_validate_and_save, resolved, args.connection, token)
        except ConnectorError as exc:
            return _not_stored(args.connection, exc, settings.token_url)
        print(f"the token endpoint {settings.token_url} took the refresh token (it answered with an access token)")
        _tell_where(resolved, args.connection, existed)
        return 0
    if not args.code:
        if args.state:
            raise Usage("--state goes with --code (the bare code from the redirected URL)")
        base = conn.connector.oauth_consent_url(settings)
        if not base:
            raise Usage(
                f"connector {conn.connector.name!r} declares no authorize URL; get a refresh token and pass it with "
                "--refresh-token - (standard input) or --refresh-token-file PATH"
            )
        state = pysecrets.token_hex(24)  # hex: never starts with "-", so `--state VALUE` always parses
        path = _auth_state_file(resolved)
        states = {k: v for k, v in _read_auth_states(path).items() if isinstance(v, dict) and float(v.get("expires_at") or 0) > time.time()}
        states[args.connection] = {"state": state, "expires_at": time.time() + AUTH_STATE_TTL, "redirect_uri": args.redirect_uri}
        try:
            _write_auth_states(path, states)
        except OSError as exc:
            raise Usage(f"cannot remember the consent request in {path}: {exc.strerror or exc}") from None
        consent = authorize_url(
            base,
            client_id=settings.client_id,
            redirect_uri=args.redirect_uri,
            scopes=getattr(settings, "scopes", None) or conn.connector.oauth_scopes,
            state=state,
        )
        print("Open this URL, sign in and consent; then, within the hour, run this command again with")
        print("--code and the whole URL you were redirected to (its state is checked):\n")
        print(consent)
        return 0
    code, state = args.code, args.state
    extra: dict[str, str] = {}
    if code.startswith(("http://", "https://")):
        params = urllib.parse.parse_qs(urllib.parse.urlsplit(code).query)
        if "error" in params:
            description = params.get("error_description", [""])[0]
            raise Usage(terminal_safe(f"the consent page answered error {params['error'][0]!r}: {description}"))
        if "code" not in params:
            raise Usage(terminal_safe(f"the URL has no code parameter: {code}"))
        in_url = params.get("state", [None])[0]
        if state is not None and in_url is not None and state != in_url:
            raise Usage("--state differs from the state in the URL; pass only the URL")
        code, state = params["code"][0], in_url or state
        # what else the vendor put on the redirect (QuickBooks: realmId, the company the consent was for)
        extra = {k: v[0] for k, v in params.items() if k not in ("code", "state", "scope") and v}
    pending = _check_auth_state(args, resolved, state)
    # the token request must name the redirect URI the consent URL named
    remembered = pending.get("redirect_uri")
    redirect_uri = remembered if isinstance(remembered, str) else args.redirect_uri
    try:
        tokens = anyio.run(
            functools.partial(
                exchange_code,
                settings.token_url,
                client_id=settings.client_id,
                client_secret=settings.client_secret,
                code=code,
                redirect_uri=redirect_uri,
                client_auth=conn.connector.oauth_client_auth,
            )
        )
    except ConnectorError as exc:
        return _not_stored(args.connection, exc, settings.token_url)
    logs.redactor.learn_tokens(f"auth:{args.connection}", tokens)
    anyio.run(_save, resolved, args.connection, tokens)
    _forget_auth_state(resolved, args.connection)  # a state is good for one code
    print(f"authorised {args.connection!r}: the token endpoint {settings.token_url} exchanged the code for tokens")
    _tell_where(resolved, args.connection, existed)
    for key, value in sorted(extra.items()):
        print(terminal_safe(f"the redirect also carried {key} = {value} (e.g. QuickBooks' realmId goes in the connection's realm_id)"))
    return 0


def _not_stored(connection: str, exc: ConnectorError, token_url: str) -> int:
    """Say what the token endpoint said (secrets scrubbed) and that nothing was stored; exit status 1."""
    text = logs.redactor.scrub(str(exc))
    where = text if token_url in text else f"{token_url}: {text}"
    print(terminal_safe(f"apicenterd: auth {connection}: {where}; nothing was stored"), file=sys.stderr)
    return 1


async def _save(resolved: Resolved, connection: str, tokens: Any) -> None:
    """Store ``tokens`` as the connection's newest (encrypted with ``[state] token_key`` when set)."""
    from ..engine import StateTokenStore
    from ..tokencrypt import TokenCipher

    cipher = TokenCipher(resolved.token_key) if resolved.token_key else None
    await _with_store(resolved, lambda store: StateTokenStore(store, connection, cipher).save(tokens))


async def _validate_and_save(resolved: Resolved, connection: str, refresh_token: str) -> None:
    """Spend ``refresh_token`` once at the token endpoint (the refresh grant) and store what comes back;
    the vendor's refusal raises (AuthError) before anything is stored."""
    import httpx

    from ..oauth import OAuth2RefreshAuth

    conn = resolved.connections[connection]
    settings: Any = conn.settings
    stored: list[Any] = []

    class _Fresh:
        """A token store that starts empty (the given token bootstraps it) and keeps what the refresh returns."""

        async def load(self) -> dict[str, Any] | None:
            return None

        async def save(self, tokens: Any) -> None:
            await _save(resolved, connection, tokens)  # durable before anything else, as in the daemon
            stored.append(tokens)

    async with httpx.AsyncClient(timeout=30.0) as client:
        auth = OAuth2RefreshAuth(
            token_client=client,
            token_url=settings.token_url,
            client_id=settings.client_id,
            client_secret=_plain(settings.client_secret),
            tokens=_Fresh(),
            initial_refresh_token=refresh_token,
            connection=connection,
            client_auth=conn.connector.oauth_client_auth,
        )
        try:
            await auth.access_token(force=True)
        except httpx.HTTPError as exc:
            from ..errors import RetryableError

            reason = logs.redactor.scrub(str(exc)) or type(exc).__name__
            raise RetryableError(f"token request to {settings.token_url} failed: {reason}") from None
    assert stored  # a refresh that returned saved its tokens


def _plain(value: Any) -> str:
    """A secret setting's text (``SecretStr`` or ``str``)."""
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


def _tell_where(resolved: Resolved, connection: str, existed: bool) -> None:
    """Say where the tokens went and what the daemon needs to use them."""
    cfg = resolved.config.state
    if cfg.url:
        origin = "[state] url"
    else:
        env = next((k for k in os.environ if k.upper() == "APICENTERD_STATE__PATH"), None)
        origin = f"${env}" if env else f"[state] path of {resolved.path}"
    crypt = "encrypted with [state] token_key" if resolved.token_key else "in plain text: set [state] token_key to encrypt them"
    print(f"tokens stored in the state store {resolved.state_where} ({origin}), table tokens, {crypt}")
    if not existed:
        print(
            f"note: {resolved.state_where} did not exist and was created: if the daemon uses another state store "
            "(its unit sets APICENTERD_STATE__PATH=/var/lib/apicenterd/state.db), run this command again with that "
            "variable set, e.g. `sudo APICENTERD_STATE__PATH=/var/lib/apicenterd/state.db apicenterd auth ...`"
        )
    print(
        f"the daemon uses them from its next start or reload (systemctl reload apicenterd); the connection needs no "
        f"refresh_token setting (it only seeds an empty store: leave it out of [connections.{connection}])"
    )
