"""The spec is good enough for SDK generators: a Python client generated from the committed
``openapi/openapi.yaml`` with ``openapi-python-client`` drives create / list / get / delete of
a vfolder against a real uvicorn process, and parses the ``application/problem+json`` errors
into its generated ``Problem`` model."""

from __future__ import annotations

import base64
import importlib
import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.support.server import clean_environment, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "openapi" / "openapi.yaml"
BIN = Path(sys.executable).parent
GENERATOR = BIN / "openapi-python-client"
# The name openapi-python-client derives from the spec's title ("storage-proxy").
PACKAGE = "storage_proxy_client"
MODULES = (
    "client",
    "models",
    "api.vfolders.vfolders_create",
    "api.vfolders.vfolders_list",
    "api.vfolders.vfolders_get",
    "api.vfolders.vfolders_delete",
    "api.uploads.uploads_create",
    "api.uploads.uploads_append",
    "api.uploads.uploads_head",
    "types",
)
SERVICE_KEY = "sdk-service-key-0123456789abcdef0123456789"
JWT_SECRET = "sdk-jwt-secret-0123456789abcdef0123456789abcd"
READY_WITHIN = 15.0
PROBLEM_JSON = "application/problem+json"


def _generate(out: Path) -> None:
    """Generate the client into ``out``; any warning (an endpoint, parameter or response the
    generator had to skip) is a spec problem and fails the test with the generator's words."""
    # The generator's post hooks run ruff on the result: find the venv's ruff first.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(SPEC),
            "--output-path",
            str(out),
            "--config",
            str(SPEC.parent / "openapi-python-client.yaml"),
            "--meta",
            "none",
            "--fail-on-warning",
        ],
        cwd=out.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = f"{result.stdout}{result.stderr}"
    assert result.returncode == 0, f"openapi-python-client failed:\n{output}"
    # A clean run prints only "Generating <path>"; anything else is a complaint.
    complaints = [
        line for line in output.splitlines() if line.strip() and line.strip() != f"Generating {out}"
    ]
    assert not complaints, f"openapi-python-client complained:\n{output}"


@pytest.fixture
def sdk(tmp_path: Path) -> Iterator[dict[str, ModuleType]]:
    """The generated package's modules, importable only while the test runs."""
    out = tmp_path / "sdk" / PACKAGE
    out.parent.mkdir(parents=True)
    _generate(out)
    assert (out / "__init__.py").is_file(), sorted(p.name for p in out.parent.iterdir())

    sys.path.insert(0, str(out.parent))
    importlib.invalidate_caches()
    try:
        yield {name: importlib.import_module(f"{PACKAGE}.{name}") for name in MODULES}
    finally:
        sys.path.remove(str(out.parent))
        for module in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
            del sys.modules[module]
        importlib.invalidate_caches()


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"uvicorn exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(
        f"{base_url}/health/ready not 200 within {READY_WITHIN} s:\n"
        f"{log.read_text(errors='replace')}"
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A real uvicorn process on a free port, on a migrated embedded SQLite; its base URL."""
    workdir = tmp_path / "server"
    workdir.mkdir()
    env = clean_environment(
        STORAGE_ENV="dev",
        STORAGE_DATA_DIR=str(tmp_path / "data"),
        STORAGE_SERVICE_KEYS=SERVICE_KEY,
        STORAGE_JWT_SECRET=JWT_SECRET,
    )
    migrate = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrate.returncode == 0, f"migrate failed:\n{migrate.stdout}{migrate.stderr}"

    port = free_port()
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:create_app_from_environment",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=workdir,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, process, log)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_generated_client_drives_the_vfolder_lifecycle(
    sdk: dict[str, ModuleType], server: str
) -> None:
    models: Any = sdk["models"]
    create: Any = sdk["api.vfolders.vfolders_create"]
    list_: Any = sdk["api.vfolders.vfolders_list"]
    get: Any = sdk["api.vfolders.vfolders_get"]
    delete: Any = sdk["api.vfolders.vfolders_delete"]
    authenticated_client: Any = sdk["client"].AuthenticatedClient

    # Undocumented statuses raise instead of parsing to None: the spec must list them all.
    with authenticated_client(
        base_url=server, token=SERVICE_KEY, raise_on_unexpected_status=True
    ) as client:
        body = models.VFolderCreate(
            name="from-the-sdk",
            volume="local",
            owner_type=models.OwnerType.USER,
            owner_id="alice",
        )
        created_response = create.sync_detailed(client=client, body=body)
        assert created_response.status_code == 201, created_response.content
        created = created_response.parsed
        assert isinstance(created, models.VFolderView), created
        assert isinstance(created.id, uuid.UUID)
        assert created.name == "from-the-sdk"
        assert created.volume == "local"
        assert created.owner_type == models.OwnerType.USER
        assert created.owner_id == "alice"
        assert created.status == models.VFolderStatus.READY
        assert created_response.headers["location"] == f"/v1/vfolders/{created.id}"

        listed = list_.sync(client=client, owner_id="alice")
        assert isinstance(listed, models.VFolderList), listed
        assert [(v.id, v.name) for v in listed.items] == [(created.id, "from-the-sdk")]
        assert all(isinstance(v, models.VFolderView) for v in listed.items)
        assert listed.next_cursor is None

        got = get.sync(created.id, client=client)
        assert isinstance(got, models.VFolderView), got
        assert (got.id, got.name, got.status) == (
            created.id,
            "from-the-sdk",
            models.VFolderStatus.READY,
        )

        deleted = delete.sync_detailed(created.id, client=client)
        assert deleted.status_code == 204, deleted.content
        assert deleted.parsed is None

        after = get.sync(created.id, client=client)
        assert isinstance(after, models.VFolderView), after
        assert after.id == created.id
        assert after.status == models.VFolderStatus.DELETED
        assert after.deleted_at is not None
        assert list_.sync(client=client, owner_id="alice").items == []

        # Errors come back as application/problem+json and parse into the generated model.
        unknown = uuid.uuid4()
        missing = get.sync_detailed(unknown, client=client)
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith(PROBLEM_JSON)
        problem = missing.parsed
        assert isinstance(problem, models.Problem), missing.content
        assert problem.type_ == "/problems/vfolder-not-found"
        assert problem.status == 404
        assert problem.title
        assert problem.detail

    with authenticated_client(
        base_url=server, token="not-a-key", raise_on_unexpected_status=True
    ) as stranger:
        refused = get.sync_detailed(uuid.uuid4(), client=stranger)
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith(PROBLEM_JSON)
        assert isinstance(refused.parsed, models.Problem), refused.content
        assert refused.parsed.status == 401


def test_generated_client_uploads_with_tus(sdk: dict[str, ModuleType], server: str) -> None:
    """The tus bodies are declared, so a generated client can create and append."""
    models: Any = sdk["models"]
    types: Any = sdk["types"]
    authenticated_client: Any = sdk["client"].AuthenticatedClient
    data = b"sent by a generated client"
    with authenticated_client(
        base_url=server,
        token=SERVICE_KEY,
        headers={"X-Act-As-User": "alice"},
        raise_on_unexpected_status=True,
    ) as client:
        vfolder = sdk["api.vfolders.vfolders_create"].sync(
            client=client,
            body=models.VFolderCreate(name="tus-sdk", volume="local", owner_id="alice"),
        )
        created = sdk["api.uploads.uploads_create"].sync_detailed(
            vfolder.id,
            client=client,
            tus_resumable="1.0.0",
            upload_length=str(len(data)),
            upload_metadata="path " + base64.b64encode(b"sdk.txt").decode(),
        )
        assert created.status_code == 201, created.content
        upload_id = uuid.UUID(created.headers["location"].rsplit("/", 1)[1])
        appended = sdk["api.uploads.uploads_append"].sync_detailed(
            vfolder.id,
            upload_id,
            client=client,
            body=types.File(payload=io.BytesIO(data)),
            tus_resumable="1.0.0",
            upload_offset="0",
        )
        assert appended.status_code == 204, appended.content
        head = sdk["api.uploads.uploads_head"].sync_detailed(
            vfolder.id, upload_id, client=client, tus_resumable="1.0.0"
        )
        assert head.headers["upload-offset"] == str(len(data))
