"""Alembic migrations of the server database (applied by ``selfsup serve`` on start)."""
