"""``storage-proxy import-backendai``: Backend.AI's TOML in, our volumes TOML out, and the folders
of a volume in Backend.AI's layout adopted where they lie, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import tomllib
import uuid
from pathlib import Path

import anyio
import pytest
from sqlalchemy import select

from app.backendai.importer import ImportedVolume, find_folders
from app.cli import main
from app.config import Settings
from app.db.engine import create_engine, create_session_factory
from app.vfolders.models import OwnerType, VFolderRow
from tests.support.app import SERVICE, bearer, client_for, make_settings, user_token

pytestmark = pytest.mark.ours_only("the importer and /v1 are ours")

USER_SCOPE = uuid.UUID("00000000-0000-0000-0000-000000000001")
PROJECT_SCOPE = uuid.UUID("6a2e1c3b-93d4-4f0e-b1aa-3f7c2d9e8b10")
USER_FOLDER = uuid.UUID("d5fae63d8d514c74b35765d8a3e82022")
PROJECT_FOLDER = uuid.UUID("0b6c5f1e2d3a4b5c8d9e0f1a2b3c4d5e")

# The reference's own storage-proxy.toml, as Backend.AI 23.9 reads it, with two more volumes:
# an XFS one and one on a backend we have no driver for.
BACKENDAI_TOML = """
[etcd]
namespace = "local"
addr = {{ host = "127.0.0.1", port = 12379 }}
user = ""
password = ""

[storage-proxy]
node-id = "i-storage-proxy-reference"
num-proc = 1
secret = "reference-storage-proxy-jwt-secret-0123456789"
session-expire = "1d"

[api.client]
service-addr = {{ host = "127.0.0.1", port = 16021 }}
ssl-enabled = false

[api.manager]
service-addr = {{ host = "127.0.0.1", port = 16022 }}
ssl-enabled = false
secret = "reference-manager-secret"

[logging]
level = "WARNING"
drivers = ["console"]

[volume.local]
backend = "vfs"
path = "{local}"

[volume.fast]
backend = "xfs"
path = "{fast}"

[volume.flash]
backend = "purestorage"
path = "/mnt/flash"

[volume.flash.options]
purity_endpoint = "https://purity.example"
"""


def bai_folder(root: Path, scope: uuid.UUID, folder: uuid.UUID) -> Path:
    h = folder.hex
    path = root / scope.hex / h[:2] / h[2:4] / h[4:]
    path.mkdir(parents=True)
    return path


@pytest.fixture
def backendai(tmp_path: Path) -> Path:
    """A Backend.AI config and its two volumes, filled as Backend.AI leaves them."""
    local, fast = tmp_path / "vfroot" / "local", tmp_path / "vfroot" / "fast"
    user_folder = bai_folder(local, USER_SCOPE, USER_FOLDER)
    (user_folder / "hello.txt").write_bytes(b"hello world")
    (user_folder / "sub").mkdir()
    (user_folder / "sub" / "data.bin").write_bytes(b"\0" * 1000)
    project_folder = bai_folder(fast, PROJECT_SCOPE, PROJECT_FOLDER)
    (project_folder / "p.txt").write_bytes(b"project")
    (local / "version.txt").write_text("3\n")  # as Backend.AI writes it
    config = tmp_path / "storage-proxy.toml"
    config.write_text(BACKENDAI_TOML.format(local=local, fast=fast))
    return config


@pytest.fixture
def environment(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, str]:
    """Our settings as the command reads them, from the environment only."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("STORAGE_DATABASE_URL", database_url)
    monkeypatch.setenv("STORAGE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path, database_url


def scopes_file(tmp_path: Path) -> Path:
    path = tmp_path / "scopes.json"
    path.write_text(json.dumps({str(PROJECT_SCOPE): "project"}))
    return path


def run(*args: str) -> int:
    return main(["import-backendai", *args])


async def rows(database_url: str) -> list[VFolderRow]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            result = await session.execute(select(VFolderRow).order_by(VFolderRow.name))
            return list(result.scalars())
    finally:
        await engine.dispose()


def tree(root: Path) -> list[tuple[str, int]]:
    return sorted(
        (str(p.relative_to(root)), p.stat().st_mtime_ns if p.is_file() else 0)
        for p in root.rglob("*")
    )


async def test_config_is_printed_and_dry_run_changes_nothing(
    backendai: Path, environment: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path, database_url = environment
    before = tree(tmp_path / "vfroot")
    code = await anyio.to_thread.run_sync(
        run, "--config", str(backendai), "--scopes-file", str(scopes_file(tmp_path))
    )
    assert code == 0
    out, err = capsys.readouterr()
    printed = tomllib.loads(out)
    assert printed == {
        "volumes": {
            "local": {
                "driver": "posix",
                "path": str(tmp_path / "vfroot" / "local"),
                "options": {"layout": "backendai"},
            },
            "fast": {
                "driver": "xfs",
                "path": str(tmp_path / "vfroot" / "fast"),
                "options": {"layout": "backendai"},
            },
        }
    }
    assert "'flash': backend 'purestorage' has no driver here" in err
    assert "'flash': not carried over: options" in err
    assert f"would adopt local: user:{USER_SCOPE}/{USER_FOLDER.hex}" in err
    assert f"would adopt fast: project:{PROJECT_SCOPE}/{PROJECT_FOLDER.hex}" in err
    assert "dry run: nothing changed" in err
    # Our settings accept what was printed.
    written = tmp_path / "ours.toml"
    written.write_text(out)
    assert set(Settings(config=written).volumes()) == {"local", "fast"}
    assert await rows(database_url) == []
    assert tree(tmp_path / "vfroot") == before
    assert not (tmp_path / "vfroot" / "local" / ".staging").exists()


async def test_apply_adopts_in_place_once_and_the_server_serves_it(
    backendai: Path, environment: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path, database_url = environment
    ours = tmp_path / "ours.toml"
    before = tree(tmp_path / "vfroot")
    args = ["--config", str(backendai), "--write", str(ours)]
    args += ["--scopes-file", str(scopes_file(tmp_path)), "--apply"]
    assert await anyio.to_thread.run_sync(lambda: run(*args)) == 0
    err = capsys.readouterr().err
    assert "adopted 2 vfolder(s)" in err

    adopted = {row.id: row for row in await rows(database_url)}
    assert set(adopted) == {USER_FOLDER, PROJECT_FOLDER}
    user_row, project_row = adopted[USER_FOLDER], adopted[PROJECT_FOLDER]
    assert (user_row.owner_type, user_row.owner_id) == ("user", str(USER_SCOPE))
    assert (project_row.owner_type, project_row.owner_id) == ("group", str(PROJECT_SCOPE))
    assert (user_row.name, user_row.volume, user_row.status) == (
        f"bai-{USER_FOLDER.hex}",
        "local",
        "ready",
    )
    # The ledger filled from the disk by the reconciler: 2 files, 1 directory.
    assert (user_row.used_bytes, user_row.file_count) == (1011, 3)
    assert (project_row.used_bytes, project_row.file_count) == (7, 1)
    assert tree(tmp_path / "vfroot") == before  # no byte moved

    # Again: nothing new, nothing changed.
    assert await anyio.to_thread.run_sync(lambda: run(*args)) == 0
    err = capsys.readouterr().err
    assert "adopted 0 vfolder(s); 2 already registered" in err
    again = {row.id: row for row in await rows(database_url)}
    assert {i: r.updated_at for i, r in again.items()} == {
        i: r.updated_at for i, r in adopted.items()
    }

    # A server on the written config serves the adopted files where they lie; only the POSIX
    # volume here: the XFS one needs a real XFS mount to start.
    text = ours.read_text().split('[volumes."fast"]')[0]
    ours.write_text(text)
    settings = make_settings(data_dir=tmp_path / "data", database_url=database_url, config=ours)
    owner = bearer(user_token(str(USER_SCOPE)))
    async with client_for(settings) as client:
        base = f"/v1/vfolders/{USER_FOLDER}"
        got = await client.get(f"{base}/files/hello.txt", headers=owner)
        assert got.status_code == 200, got.text
        assert got.content == b"hello world"
        put = await client.put(f"{base}/files/new.txt", content=b"abc", headers=owner)
        assert put.status_code == 201, put.text
        usage = (await client.get(f"{base}/usage", headers=SERVICE)).json()
        assert (usage["used_bytes"], usage["file_count"]) == (1014, 4)
    h = USER_FOLDER.hex
    place = tmp_path / "vfroot" / "local" / USER_SCOPE.hex / h[:2] / h[2:4] / h[4:]
    assert (place / "new.txt").read_bytes() == b"abc"


async def test_a_folder_registered_elsewhere_is_a_conflict_left_alone(
    backendai: Path, environment: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path, database_url = environment
    args = ["--config", str(backendai), "--apply"]
    assert await anyio.to_thread.run_sync(lambda: run(*args)) == 0
    capsys.readouterr()
    # The same folder id found on another volume too (a copy made by hand): not adopted twice.
    copy = tmp_path / "vfroot" / "fast" / USER_SCOPE.hex / USER_FOLDER.hex[:2]
    copy = copy / USER_FOLDER.hex[2:4] / USER_FOLDER.hex[4:]
    copy.mkdir(parents=True)
    assert await anyio.to_thread.run_sync(lambda: run(*args)) == 1
    err = capsys.readouterr().err
    assert f"conflict fast: user:{USER_SCOPE}/{USER_FOLDER.hex}" in err
    assert {row.volume for row in await rows(database_url) if row.id == USER_FOLDER} == {"local"}


def test_dry_run_creates_no_embedded_database(
    backendai: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STORAGE_DATABASE_URL", raising=False)
    monkeypatch.setenv("STORAGE_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    assert run("--config", str(backendai)) == 0
    assert list((tmp_path / "data").iterdir()) == []


REFERENCE_VFROOT = Path("/root/.cache/storage-proxy-reference/backendai/vfroot")


@pytest.mark.skipif(not REFERENCE_VFROOT.is_dir(), reason="no Backend.AI reference here")
def test_finds_the_reference_folders_read_only() -> None:
    """The running reference's own volume: every folder it made is found with its scope."""
    ignored: list[str] = []
    found = find_folders(
        ImportedVolume("local", "posix", REFERENCE_VFROOT),
        default_kind=OwnerType.USER,
        scope_kinds={},
        ignored=ignored,
    )
    assert ignored == []
    for folder in found:
        h = folder.vfolder_id.hex
        scope = uuid.UUID(folder.owner_id).hex
        assert (REFERENCE_VFROOT / scope / h[:2] / h[2:4] / h[4:]).is_dir()
    reference_folder = REFERENCE_VFROOT / USER_SCOPE.hex / "d5" / "fa" / USER_FOLDER.hex[4:]
    if reference_folder.is_dir():
        assert any(f.vfolder_id == USER_FOLDER and f.owner_id == str(USER_SCOPE) for f in found)


def test_a_volume_in_another_layout_version_is_left_out(
    backendai: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STORAGE_DATABASE_URL", raising=False)
    monkeypatch.setenv("STORAGE_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "vfroot" / "fast" / "version.txt").write_text("2\n")
    assert run("--config", str(backendai)) == 0
    out, err = capsys.readouterr()
    assert set(tomllib.loads(out)["volumes"]) == {"local"}
    assert "'fast': Backend.AI vfolder layout version '2', only 3 is served here" in err
    assert "would adopt 1 vfolder(s)" in err
