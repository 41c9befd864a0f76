"""The Alembic migrations build exactly the schema the ORM models describe."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from selfsup.server.db import alembic_config, make_engine, upgrade_database
from selfsup.server.models import Base


def test_migrations_match_the_models_and_are_idempotent(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade_database(engine)
        upgrade_database(engine)  # a second start changes nothing
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            revision = MigrationContext.configure(conn).get_current_revision()
        assert diff == []
        assert revision == ScriptDirectory.from_config(alembic_config()).get_current_head()
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables

        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
