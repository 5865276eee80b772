"""Declarative base with a constraint naming convention, so Alembic migrations name (and can
later drop) constraints identically on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def import_models() -> None:
    """Import every model module so ``Base.metadata`` knows all tables (for Alembic)."""
    importlib.import_module("app.vfolders.models")
    importlib.import_module("app.permissions.models")
    importlib.import_module("app.uploads.models")
    importlib.import_module("app.quotas.models")
    importlib.import_module("app.tasks.models")
