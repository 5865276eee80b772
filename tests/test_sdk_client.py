"""The spec is good enough for SDK generators: a Python client generated from the committed
spec drives the vfolder lifecycle against a real server."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.server import clean_environment, serving

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PACKAGE = "storage_proxy_sdk"
SERVICE_KEY = "sdk-service-key-0123456789abcdef0123456789"


@pytest.fixture
def sdk(tmp_path: Path) -> Iterator[dict[str, ModuleType]]:
    out = tmp_path / "sdk" / PACKAGE
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(ROOT / "openapi" / "openapi.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(out),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Any warning means part of the spec could not be turned into client code.
    assert "Warning" not in output, output

    sys.path.insert(0, str(out.parent))
    try:
        yield {
            name: importlib.import_module(f"{PACKAGE}.{name}")
            for name in [
                "client",
                "models",
                "api.vfolders.vfolders_create",
                "api.vfolders.vfolders_list",
                "api.vfolders.vfolders_get",
                "api.vfolders.vfolders_delete",
            ]
        }
    finally:
        sys.path.remove(str(out.parent))
        for module in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[module]


def test_generated_client_drives_the_vfolder_lifecycle(
    sdk: dict[str, ModuleType], tmp_path: Path
) -> None:
    models: Any = sdk["models"]
    env = clean_environment(STORAGE_SERVICE_KEYS=SERVICE_KEY, STORAGE_LOG_LEVEL="WARNING")
    with serving(cwd=tmp_path, env=env) as server:
        client = sdk["client"].AuthenticatedClient(base_url=server.base_url, token=SERVICE_KEY)
        body = models.VFolderCreate(
            name="from-the-sdk",
            volume="local",
            owner_type=models.OwnerType.USER,
            owner_id="alice",
        )
        created = sdk["api.vfolders.vfolders_create"].sync(client=client, body=body)
        assert isinstance(created, models.VFolderView), created
        assert created.name == "from-the-sdk"
        assert created.status == models.VFolderStatus.READY
        assert isinstance(created.id, uuid.UUID)

        listed = sdk["api.vfolders.vfolders_list"].sync(client=client, owner_id="alice")
        assert isinstance(listed, models.VFolderList)
        assert [v.id for v in listed.items] == [created.id]

        got = sdk["api.vfolders.vfolders_get"].sync(created.id, client=client)
        assert isinstance(got, models.VFolderView) and got.id == created.id

        deleted = sdk["api.vfolders.vfolders_delete"].sync_detailed(created.id, client=client)
        assert deleted.status_code == 204

        after = sdk["api.vfolders.vfolders_get"].sync(created.id, client=client)
        assert after.status == models.VFolderStatus.DELETED

        missing = sdk["api.vfolders.vfolders_get"].sync(uuid.uuid4(), client=client)
        assert isinstance(missing, models.Problem)
        assert missing.type_ == "/problems/vfolder-not-found"
        assert missing.status == 404
