"""The ``weka`` driver against a stateful fake of the WekaFS REST API v2 (``fake.py``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from drivers.driver import Driver
from drivers.weka import weka_driver
from tests.drivers.weka.fake import ENDPOINT, ORG, PASSWORD, USERNAME, FakeWeka

PASSWORD_ENV = "SP_TEST_WEKA_PASSWORD"


def weka_options(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "endpoint": ENDPOINT,
        "username": USERNAME,
        "org": ORG,
        "password_env": PASSWORD_ENV,
        "filesystem": "default",
        "retries": 2,
    }
    options.update(overrides)
    return {key: value for key, value in options.items() if value is not None}


def contract_driver(root: Path) -> Driver:
    """The contract suite's factory: the driver on ``root`` against a fake API of its own,
    which shows snapshots under ``root`` (the filesystem's mount point)."""
    os.environ.setdefault(PASSWORD_ENV, PASSWORD)
    fake = FakeWeka(root.resolve())
    return weka_driver(root, options=weka_options(), transport=fake.transport())
