from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from tests.files.conftest import vfolder  # the same throwaway vfolder as the files tests
from tests.support.app import make_settings

__all__ = ["vfolder"]


@pytest.fixture(params=["without-redis", "with-redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Settings:
    """Every upload test runs with the upload lease in the database and in Redis."""
    redis = request.getfixturevalue("redis") if request.param == "with-redis" else None
    return make_settings(data_dir=tmp_path / "data", database_url=database_url, redis_url=redis)
