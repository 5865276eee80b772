"""Alembic migrations; shipped as a package so an installed proxy can migrate itself."""
