"""Encrypt the stored datasource credentials (plain JSON until now) with the server's key.

The schema does not change: ``datasources.credentials`` stays text, holding Fernet tokens
instead of JSON. The keys come with the connection (``selfsup.server.secret_keys``); a
database with credentials cannot be upgraded (or downgraded) without them.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from selfsup.server.secret_keys import is_encrypted, keys_of

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_ROWS = sa.text("SELECT id, credentials FROM datasources")
_UPDATE = sa.text("UPDATE datasources SET credentials = :c WHERE id = :i")


def upgrade() -> None:
    """Encrypt every plain-JSON credentials value."""
    bind = op.get_bind()
    rows = [(i, c) for i, c in bind.execute(_ROWS).all() if not is_encrypted(c)]
    if rows:
        keys = keys_of(bind.dialect)
        for row_id, plain in rows:
            bind.execute(_UPDATE, {"c": keys.encrypt(plain), "i": row_id})


def downgrade() -> None:
    """Decrypt every credentials value back to plain JSON."""
    bind = op.get_bind()
    rows = [(i, c) for i, c in bind.execute(_ROWS).all() if is_encrypted(c)]
    if rows:
        keys = keys_of(bind.dialect)
        for row_id, token in rows:
            bind.execute(_UPDATE, {"c": keys.decrypt(token), "i": row_id})
