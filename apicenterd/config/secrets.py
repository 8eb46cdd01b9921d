"""Secret references in the configuration (``{ env = ... }``, ``{ file = ... }``, ``{ credential = ... }``):
resolving them, checking secret files, and finding the secrets a connection's settings hold (for log redaction)."""

from __future__ import annotations

import os
import stat
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from .schema import AdminConfig, ConnectionConfig, StateConfig

SECRET_FORMS = '{ env = "NAME" }, { file = "/path" } or { credential = "name" }'  # noqa: S105 - words, not a secret
"""The secret references the configuration takes, for messages."""

UNRESOLVED = "<unresolved secret>"
"""What stands in for a secret reference that could not be resolved (its problem is reported once)."""

UNREAD_SECRET = "<secret not read>"  # noqa: S105 - a placeholder, not a secret
"""What stands in for a secret reference that a command does not need (see ``resolve(secrets_of=...)``)."""

CREDENTIALS_DIR = "/etc/apicenterd/credentials"
"""Where the systemd unit loads credentials from (``LoadCredential=NAME:/etc/apicenterd/credentials/NAME``):
outside systemd (no ``$CREDENTIALS_DIRECTORY``) a ``{ credential = NAME }`` is read from there
(or from ``$APICENTERD_CREDENTIALS_DIR``), so ``sudo apicenterd ...`` finds what the daemon gets."""


def _is_reference(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("env", "file", "credential")


def _credential_file(ref: str, where: str) -> Path:
    """The file of credential ``ref``: in ``$CREDENTIALS_DIRECTORY`` (systemd), else in
    ``$APICENTERD_CREDENTIALS_DIR`` or :data:`CREDENTIALS_DIR` when the file is there."""
    if "/" in ref or ref in (".", ".."):
        raise ValueError(f"{where}: credential {ref!r} is not a credential name (no '/')")
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        return Path(directory) / ref
    folder = os.environ.get("APICENTERD_CREDENTIALS_DIR") or CREDENTIALS_DIR
    file = Path(folder) / ref
    if not os.path.lexists(file):
        raise ValueError(
            f"{where}: credential {ref!r} needs $CREDENTIALS_DIRECTORY (set by systemd LoadCredential=) or, outside "
            f"systemd, the file {file} (the unit's credentials folder; $APICENTERD_CREDENTIALS_DIR names another)"
        )
    return file


def _resolve_secret(value: Any, where: str) -> Any:
    """Replace ``{env=...}``, ``{file=...}`` or ``{credential=...}`` by the secret it names."""
    if not _is_reference(value):
        return value
    kind, ref = next(iter(value.items()))
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"{where}: {kind} reference must be a non-empty string")
    if kind == "env":
        if ref not in os.environ:
            raise ValueError(f"{where}: environment variable {ref} is not set")
        if not os.environ[ref].strip():
            raise ValueError(f"{where}: environment variable {ref} is empty")
        return os.environ[ref]
    if kind == "credential":
        file = _credential_file(ref, where)
    else:
        file = Path(ref)
    return _read_secret_file(file, where)


MAX_SECRET_BYTES = 64 * 1024
"""A secret file larger than this is refused: a key or token is a few hundred bytes, a bigger
file is the wrong file (a log, a database, /dev/zero through a symbolic link)."""


def _read_secret_file(file: Path, where: str) -> str:
    """The stripped text of a secret file; ValueError unless it is a readable, non-empty, small
    regular file of UTF-8 text. A FIFO, directory or device is refused before it is opened and
    the file is opened non-blocking, so a reader never waits for a writer that never comes."""
    try:
        if not stat.S_ISREG(os.stat(file).st_mode):
            raise ValueError(f"{where}: secret file {file} is not a regular file ({_file_kind(file)})")
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):  # replaced between the two looks
                raise ValueError(f"{where}: secret file {file} is not a regular file")
            data = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{where}: cannot read secret file {file}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise ValueError(f"{where}: secret file {file} is larger than {MAX_SECRET_BYTES} bytes; is it the right file?")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{where}: secret file {file} is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{where}: secret file {file} is empty")
    return text


def _file_kind(file: Path) -> str:
    mode = os.stat(file).st_mode
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):  # fmt: skip
        if test(mode):
            return kind
    return "not a file"


def _settings_with_secrets(
    cfg: ConnectionConfig, where: str, problems: list[str], secrets: set[str], *, leave_out: Collection[str] = ()
) -> dict[str, Any]:
    settings = {}
    for key, value in (cfg.model_extra or {}).items():
        if key in leave_out:
            continue
        try:
            settings[key] = _resolve_secret(value, f"{where}.{key}")
        except ValueError as exc:
            problems.append(str(exc))
            settings[key] = UNRESOLVED  # reported once; keep checking the other settings
            continue
        if settings[key] is not value and isinstance(settings[key], str):
            secrets.add(settings[key])  # given by reference: a secret, whatever the field's type
    return settings


_SECRET_NAME_PARTS = ("token", "secret", "password", "private_key", "api_key", "apikey")
"""A plain ``str`` setting whose name contains one of these is a secret too (a static API token
a plugin forgot to declare as ``SecretStr``)."""


def _secret_values(settings: BaseModel) -> set[str]:
    """Every secret in a connection's settings: ``SecretStr`` fields, and ``str`` fields named like a secret."""
    found = set()
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, str) and any(part in name.lower() for part in _SECRET_NAME_PARTS):
            found.add(value)
    return found


def _token_key(state: StateConfig, problems: list[str], secrets: set[str]) -> str | None:
    """``[state] token_key`` resolved and checked (a secret however it is given)."""
    from ..tokencrypt import TokenCipher

    if state.token_key is None:
        return None
    try:
        key = _resolve_secret(state.token_key, "state.token_key")
        if not isinstance(key, str):
            raise ValueError(f"state.token_key: give a secret string, or a reference: {SECRET_FORMS}")
        secrets.add(key)
        TokenCipher(key)
    except ValueError as exc:
        message = str(exc)
        problems.append(message if message.startswith("state.token_key") else f"state.token_key: {message}")
        return None
    return key


MIN_ADMIN_TOKEN = 16
"""Characters an admin token must have at least (it guards replays, discards and resets)."""


def _admin_token(admin: AdminConfig, problems: list[str], secrets: set[str]) -> str | None:
    """``[admin] token`` resolved and checked (a secret however it is given)."""
    if admin.token is None:
        return None
    try:
        token = _resolve_secret(admin.token, "admin.token")
        if not isinstance(token, str):
            raise ValueError(f"admin.token: give a secret string, or a reference: {SECRET_FORMS}")
        if len(token) < MIN_ADMIN_TOKEN:
            raise ValueError(
                f"admin.token: too short ({len(token)} characters; at least {MIN_ADMIN_TOKEN}, e.g. from `openssl rand -hex 32`)"
            )
    except ValueError as exc:
        message = str(exc)
        problems.append(message if message.startswith("admin.token") else f"admin.token: {message}")
        return None
    secrets.add(token)
    return token
