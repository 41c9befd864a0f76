"""Datasource credentials encrypted at rest with Fernet, under keys kept outside the database.

A copy of the database without the key reveals no credential: the ``datasources.credentials``
column holds Fernet tokens (AES-128-CBC with HMAC-SHA256, from the ``cryptography`` package),
never JSON. The keys come from, in this order:

* ``$SELFSUP_SECRET_KEY``: one or more Fernet keys separated by commas, newest first;
* the key file ``<data dir>/secret.key`` (one key per line, newest first), created with mode
  0600 on the server's first start.

Several keys make rotation possible (:class:`cryptography.fernet.MultiFernet`): the first key
encrypts, every key decrypts. ``selfsup serve rotate-key`` adds a new key, re-encrypts every
row with it and drops the old ones (see :func:`rotate_credentials`).

The keys travel with the engine (:func:`attach_keys`): :class:`selfsup.server.models.SecretJSON`
and the migration that encrypts existing rows find them on the connection's dialect, so every
engine (one per server, one per test) uses its own keys.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Engine, text
from sqlalchemy.engine import Dialect

from selfsup.errors import ConfigError

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"
KEY_ENV = "SELFSUP_SECRET_KEY"
_DIALECT_ATTRIBUTE = "selfsup_secret_keys"


class SecretKeyError(ConfigError):
    """The encryption keys are missing, malformed or do not open the stored credentials; the
    message names where the keys were looked for."""


@dataclass(frozen=True)
class SecretKeys:
    """The Fernet keys of one server, newest first, and where they came from.

    Attributes:
        keys: urlsafe-base64 Fernet keys (44 characters each); the first one encrypts.
        source: ``$SELFSUP_SECRET_KEY`` or the key file's path, for messages.
        path: the key file, or None when the keys come from the environment.
    """

    keys: tuple[bytes, ...]
    source: str
    path: Path | None = None

    @functools.cached_property
    def _fernet(self) -> MultiFernet:
        # Built once per key set: every credential column read goes through it.
        return MultiFernet([Fernet(k) for k in self.keys])

    def encrypt(self, plain: str) -> str:
        """``plain`` encrypted with the newest key, as ASCII text."""
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plain text of ``token``.

        Raises:
            SecretKeyError: no key opens it (a wrong or missing key), naming the key source.
        """
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise SecretKeyError(
                f"stored datasource credentials cannot be decrypted with the key(s) from "
                f"{self.source}: it is not the key the database was encrypted with (restore "
                f"the original {KEY_FILE_NAME} or ${KEY_ENV})"
            ) from None

    def rotate(self, token: str) -> str:
        """``token`` re-encrypted with the newest key (decrypted with any)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise SecretKeyError(
                f"stored datasource credentials cannot be decrypted with the key(s) from "
                f"{self.source}; nothing was re-encrypted"
            ) from None


def _parse_keys(raw: list[str], source: str) -> tuple[bytes, ...]:
    keys = tuple(k.strip().encode("ascii", "replace") for k in raw if k.strip())
    if not keys:
        raise SecretKeyError(f"{source} holds no key; expected Fernet keys, newest first")
    for number, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except ValueError:
            raise SecretKeyError(
                f"key {number} in {source} is not a Fernet key (32 bytes in urlsafe base64, "
                "44 characters, as made by cryptography.fernet.Fernet.generate_key())"
            ) from None
    return keys


def write_key_file(path: Path, keys: tuple[bytes, ...]) -> None:
    """Write ``keys`` (newest first) to ``path`` atomically, readable by the owner only.

    The temporary file is created with mode 0600, so the keys are never readable by others,
    not even for a moment.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"".join(k + b"\n" for k in keys))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_key_file(path: Path) -> bool:
    """Create ``path`` with one new key unless it exists; True if this call made it.

    The file appears complete or not at all (written aside, then hard-linked into place), and
    of two processes starting at once only one key wins: the other reads it, instead of
    replacing it after having encrypted something with its own.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.new")
    write_key_file(tmp, (Fernet.generate_key(),))
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def load_keys(
    data_dir: Path, environ: Mapping[str, str] | None = None, create: bool = True
) -> SecretKeys | None:
    """The server's keys: ``$SELFSUP_SECRET_KEY``, else ``<data_dir>/secret.key``.

    Args:
        data_dir: the server's data folder, which holds the key file.
        environ: the environment (default ``os.environ``).
        create: make a new key file (mode 0600) when there is none; else return None.

    Raises:
        SecretKeyError: a key is malformed, or the key file cannot be read.
    """
    env = os.environ if environ is None else environ
    raw_env = env.get(KEY_ENV, "")
    if raw_env.strip():
        return SecretKeys(_parse_keys(raw_env.split(","), f"${KEY_ENV}"), f"${KEY_ENV}")
    path = Path(data_dir) / KEY_FILE_NAME
    if not path.exists():
        if not create:
            return None
        if _create_key_file(path):
            logger.warning(
                "created the encryption key of datasource credentials: %s (mode 0600). Back "
                "it up apart from the database: without it the stored credentials are lost",
                path,
            )
    try:
        mode = path.stat().st_mode
        content = path.read_text(encoding="ascii")
    except (OSError, UnicodeError) as exc:
        raise SecretKeyError(f"cannot read the key file {path}: {exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "key file %s is readable by others (mode %o); run: chmod 600 %s",
            path,
            mode & 0o777,
            path,
        )
    return SecretKeys(
        _parse_keys(content.splitlines(), f"key file {path}"), f"key file {path}", path
    )


def attach_keys(engine: Engine, keys: SecretKeys | None) -> None:
    """Let ``engine``'s connections (models and migrations) encrypt with ``keys``."""
    setattr(engine.dialect, _DIALECT_ATTRIBUTE, keys)


def keys_of(dialect: Dialect) -> SecretKeys:
    """The keys attached to the engine of ``dialect``.

    Raises:
        SecretKeyError: none were attached (a tool opened the database without the key).
    """
    keys: SecretKeys | None = getattr(dialect, _DIALECT_ATTRIBUTE, None)
    if keys is None:
        raise SecretKeyError(
            "datasource credentials are stored encrypted and this needs the server's key, but "
            f"none was found: give the server's --data-dir (which holds {KEY_FILE_NAME}; "
            f"selfsup serve makes it on its first start) or set ${KEY_ENV}"
        )
    return keys


def is_encrypted(stored: str) -> bool:
    """Whether a stored credentials value is a Fernet token (not plain JSON)."""
    return not stored.lstrip().startswith("{")


def check_keys_open_the_database(engine: Engine, keys: SecretKeys) -> None:
    """Decrypt one stored credentials value, so a wrong key fails at start, not at a job.

    Raises:
        SecretKeyError: the keys do not open it (the message names the key source).
    """
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT credentials FROM datasources LIMIT 1")).scalar()
    if isinstance(stored, str) and is_encrypted(stored):
        keys.decrypt(stored)


def rotate_credentials(engine: Engine, keys: SecretKeys) -> int:
    """Re-encrypt every stored credentials value with the newest of ``keys``, in one
    transaction; returns the number of rows."""
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT id, credentials FROM datasources")).all()
        for row_id, stored in rows:
            new = keys.rotate(stored) if is_encrypted(stored) else keys.encrypt(stored)
            conn.execute(
                text("UPDATE datasources SET credentials = :c WHERE id = :i"),
                {"c": new, "i": row_id},
            )
    return len(rows)
