"""The FlashBlade driver against a respx-scripted fake of the REST 2.x API (fake.py): the
log-in exchange and its renewal, retries and their limits, malformed answers, TLS and the API
token, and file-system snapshots seen per vfolder through the mount's snapshot directory. The
files are real; only the array's API is a fake."""

from __future__ import annotations

import logging
import shutil
import ssl
import uuid
from pathlib import Path

import anyio
import certifi
import httpx
import pytest

from drivers.base import capabilities_of
from drivers.driver import Driver
from drivers.errors import (
    BackendApiError,
    BackendUnavailable,
    InvalidDriverOptions,
    InvalidSnapshotName,
    PathNotFound,
    SnapshotNotFound,
)
from drivers.paths import ROOT, parse_relative_path
from drivers.purestorage import (
    FlashBladeApi,
    FlashBladeSnapshots,
    PureStorageOptions,
)
from drivers.registry import build_driver
from drivers.rest.client import VendorClient
from drivers.rest.health import RestManagement
from tests.drivers.purestorage.fake import (
    API_TOKEN,
    ENDPOINT,
    FILE_SYSTEM,
    TOKEN_ENV,
    VERSION,
    FakeFlashBlade,
    error,
    fake_driver,
    file_system_item,
)


@pytest.fixture
async def built(tmp_path: Path) -> tuple[Driver, FakeFlashBlade]:
    driver, fake = fake_driver(tmp_path / "volume")
    await driver.initialize()
    return driver, fake


def api_of(driver: Driver) -> FlashBladeApi:
    assert isinstance(driver.snapshots, FlashBladeSnapshots)
    return driver.snapshots.api


def client_of(driver: Driver) -> VendorClient:
    assert isinstance(driver.management, RestManagement)
    return driver.management.client


def snapshots_of(driver: Driver) -> FlashBladeSnapshots:
    assert isinstance(driver.snapshots, FlashBladeSnapshots)
    return driver.snapshots


async def vfolder_with(driver: Driver, files: dict[str, str]) -> uuid.UUID:
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    for name, text in files.items():
        path = driver.vfolder_path(vfolder_id) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return vfolder_id


# -- what it is ---------------------------------------------------------------------------


def test_no_quota_no_fast_usage_only_snapshots(tmp_path: Path) -> None:
    """FlashBlade has no directory quota and no per-directory usage over REST."""
    driver, _ = fake_driver(tmp_path)
    assert driver.quota is None and driver.usage is None and driver.clone is None
    assert capabilities_of(driver) == ["snapshot"]


def test_built_through_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, API_TOKEN)
    options = {"endpoint": ENDPOINT, "file_system": FILE_SYSTEM, "api_token_env": TOKEN_ENV}
    driver = build_driver("purestorage", root=tmp_path, options=options)
    assert driver.backend == "purestorage"
    with pytest.raises(InvalidDriverOptions, match="no option 'quota_path'"):
        build_driver("purestorage", root=tmp_path, options={**options, "quota_path": "/x"})
    with pytest.raises(InvalidDriverOptions, match="api_version"):
        build_driver("purestorage", root=tmp_path, options={**options, "api_version": "1.8"})
    with pytest.raises(InvalidDriverOptions, match="mount_root"):
        build_driver(
            "purestorage",
            root=tmp_path / "volume",
            options={**options, "mount_root": str(tmp_path / "elsewhere")},
        )


def test_api_version_is_in_every_path(tmp_path: Path) -> None:
    driver, _ = fake_driver(tmp_path, api_version="2.4")
    assert api_of(driver).path("arrays") == "/api/2.4/arrays"
    assert PureStorageOptions.model_fields["api_version"].default == "2.12"


# -- log-in -------------------------------------------------------------------------------


async def test_one_login_shared_by_concurrent_calls(built: tuple[Driver, FakeFlashBlade]) -> None:
    driver, fake = built
    api = api_of(driver)
    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(api.file_system_space)
    assert fake.logins == 1
    (login,) = [r for r in fake.requests if r.url.path == "/api/login"]
    assert login.headers["api-token"] == API_TOKEN
    calls = fake.requests_to("GET", "file-systems")
    assert len(calls) == 8
    assert len({r.headers["x-auth-token"] for r in calls}) == 1


async def test_expired_session_logs_in_again_exactly_once(
    built: tuple[Driver, FakeFlashBlade],
) -> None:
    driver, fake = built
    api = api_of(driver)
    await api.file_system_space()
    fake.expire_sessions()
    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(api.file_system_space)
    assert fake.logins == 2  # one re-login, however many calls met the 401
    space = await api.file_system_space()
    assert space.name == FILE_SYSTEM and fake.logins == 2


async def test_refused_login_is_an_api_error_keeping_the_vendors_message(
    tmp_path: Path,
) -> None:
    driver, fake = fake_driver(tmp_path)
    fake.api_token = "another"
    with pytest.raises(BackendApiError, match=r"log-in refused \(401\): Invalid API token") as info:
        await api_of(driver).file_system_space()
    assert info.value.status == 401
    assert API_TOKEN not in str(info.value)


async def test_login_answer_without_session_header(tmp_path: Path) -> None:
    driver, fake = fake_driver(tmp_path)
    fake.login_answer = lambda request: httpx.Response(200, json={"username": "pureuser"})
    with pytest.raises(BackendApiError, match="no x-auth-token header"):
        await api_of(driver).file_system_space()


# -- retries, timeouts, malformed answers -------------------------------------------------


async def test_a_get_answered_5xx_is_retried(built: tuple[Driver, FakeFlashBlade]) -> None:
    driver, fake = built
    fake.fail_next("GET", "file-systems", error(503, "The array is busy."))
    space = await api_of(driver).file_system_space()
    assert space.total_physical == 4294967296
    assert len(fake.requests_to("GET", "file-systems")) == 2


async def test_a_post_answered_5xx_is_not_sent_again(
    built: tuple[Driver, FakeFlashBlade],
) -> None:
    driver, fake = built
    vfolder_id = await vfolder_with(driver, {"a.txt": "a"})
    fake.fail_next("POST", "file-system-snapshots", error(500, "Internal error.", "bai-fs"))
    with pytest.raises(BackendApiError, match="answered 500: bai-fs: Internal error") as info:
        await snapshots_of(driver).create_snapshot(vfolder_id, name="s1")
    assert info.value.status == 500
    assert len(fake.requests_to("POST", "file-system-snapshots")) == 1


async def test_a_post_that_timed_out_is_not_sent_again(
    built: tuple[Driver, FakeFlashBlade],
) -> None:
    driver, fake = built
    vfolder_id = await vfolder_with(driver, {})
    fake.fail_next("POST", "file-system-snapshots", httpx.ReadTimeout("slow"))
    with pytest.raises(BackendUnavailable, match="timed out"):
        await snapshots_of(driver).create_snapshot(vfolder_id, name="s1")
    assert len(fake.requests_to("POST", "file-system-snapshots")) == 1


async def test_a_timeout_is_backend_unavailable(built: tuple[Driver, FakeFlashBlade]) -> None:
    driver, fake = built
    fake.fail_next("GET", "file-systems", httpx.ReadTimeout("slow"), httpx.ReadTimeout("slower"))
    with pytest.raises(BackendUnavailable, match=r"GET /api/2\.12/file-systems: timed out"):
        await api_of(driver).file_system_space()
    assert len(fake.requests_to("GET", "file-systems")) == 2  # retries=1
    health = await driver.management.check() if driver.management else None
    assert health is not None and health.reachable  # the next probe gets through


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        (httpx.Response(200, text="<html>maintenance</html>"), "the answer is not JSON"),
        (httpx.Response(200, json=["not", "an", "object"]), "not an object"),
        (httpx.Response(200, json={"items": {"name": "bai-fs"}}), "items is dict, not list"),
        (httpx.Response(200, json={"items": [{"name": "bai-fs"}]}), "no space.virtual"),
        (
            httpx.Response(
                200,
                json={"items": [{**file_system_item("bai-fs"), "space": {"virtual": "5"}}]},
            ),
            "space.virtual is str, not int",
        ),
        (
            httpx.Response(
                200, json={"items": [{**file_system_item("bai-fs"), "provisioned": "lots"}]}
            ),
            "provisioned is not a number",
        ),
        (httpx.Response(200, json={"items": []}), "no file system named 'bai-fs'"),
        (
            httpx.Response(200, json={"items": [], "continuation_token": 7}),
            "continuation_token is not a string",
        ),
    ],
)
async def test_a_malformed_answer_is_an_api_error(
    built: tuple[Driver, FakeFlashBlade], answer: httpx.Response, complaint: str
) -> None:
    driver, fake = built
    fake.fail_next("GET", "file-systems", answer)
    with pytest.raises(BackendApiError, match=complaint):
        await api_of(driver).file_system_space()


async def test_a_repeating_continuation_token_ends(built: tuple[Driver, FakeFlashBlade]) -> None:
    driver, fake = built
    page = httpx.Response(200, json={"items": [], "continuation_token": "again"})
    fake.fail_next("GET", "file-system-snapshots", page, page)
    with pytest.raises(BackendApiError, match="continuation_token repeats"):
        await snapshots_of(driver).list_snapshots(uuid.uuid4())


async def test_total_absent_or_null_is_never_needed(
    built: tuple[Driver, FakeFlashBlade],
) -> None:
    driver, fake = built
    item = file_system_item(FILE_SYSTEM)
    del item["provisioned"]
    fake.file_system_answer = lambda: {"items": [item]}  # no total, no token, no count
    space = await api_of(driver).file_system_space()
    assert space.provisioned is None and space.virtual == 5368709120
    fake.file_system_answer = lambda: {"items": [file_system_item(FILE_SYSTEM)], "total": None}
    assert (await api_of(driver).file_system_space()).provisioned == 109951162777600


# -- health -------------------------------------------------------------------------------


async def test_health_probe_is_an_authenticated_read_of_the_file_system(
    tmp_path: Path,
) -> None:
    driver, fake = fake_driver(tmp_path, health_cache_seconds=0)
    assert driver.management is not None
    health = await driver.management.check()
    assert health.reachable and health.detail is None
    assert fake.requests_to("GET", "file-systems")[0].url.params["names"] == FILE_SYSTEM

    fake.file_system = "renamed-fs"
    health = await driver.management.check()
    assert not health.reachable
    assert health.detail is not None and "bai-fs: File system does not exist" in health.detail
    await driver.aclose()


# -- TLS and the API token ----------------------------------------------------------------


def test_tls_is_verified_by_default_and_a_ca_bundle_is_used(tmp_path: Path) -> None:
    driver, _ = fake_driver(tmp_path)
    assert client_of(driver)._settings["verify"] is True
    driver, _ = fake_driver(tmp_path, ca_bundle=certifi.where())
    assert isinstance(client_of(driver)._settings["verify"], ssl.SSLContext)
    driver, _ = fake_driver(tmp_path, verify_tls=False)
    assert client_of(driver)._settings["verify"] is False
    with pytest.raises(ValueError, match="ca_bundle"):
        fake_driver(tmp_path, ca_bundle=str(tmp_path / "missing.pem"))


async def test_token_from_a_file_and_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token_file = tmp_path / "token"
    token_file.write_text(API_TOKEN + "\n")
    options = {"api_token_env": None, "api_token_file": str(token_file)}
    driver, fake = fake_driver(tmp_path / "volume", **options)
    await driver.initialize()
    vfolder_id = await vfolder_with(driver, {"f": "x"})
    await snapshots_of(driver).create_snapshot(vfolder_id, name="s1")
    fake.expire_sessions()
    await snapshots_of(driver).list_snapshots(vfolder_id)
    assert fake.logins == 2
    sessions = {r.headers["x-auth-token"] for r in fake.requests if "x-auth-token" in r.headers}

    fake.api_token = "rotated"
    fake.expire_sessions()
    with pytest.raises(BackendApiError) as info:
        await snapshots_of(driver).list_snapshots(vfolder_id)

    auth = client_of(driver)._settings["auth"]
    validated = PureStorageOptions.model_validate(
        {"endpoint": ENDPOINT, "file_system": FILE_SYSTEM, **options}
    )
    shown = [caplog.text, str(info.value), repr(info.value), repr(auth), repr(validated)]
    shown += [repr(driver.management), repr(driver.snapshots)]
    for text in shown:
        assert API_TOKEN not in text
        for session in sessions:
            assert session not in text


def test_token_is_required_from_exactly_one_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = {"endpoint": ENDPOINT, "file_system": FILE_SYSTEM}
    monkeypatch.delenv("SP_NO_SUCH_TOKEN", raising=False)
    with pytest.raises(InvalidDriverOptions, match="SP_NO_SUCH_TOKEN is not set"):
        build_driver(
            "purestorage", root=tmp_path, options={**base, "api_token_env": "SP_NO_SUCH_TOKEN"}
        )
    with pytest.raises(InvalidDriverOptions, match="exactly one of api_token_env"):
        build_driver("purestorage", root=tmp_path, options=base)
    monkeypatch.setenv(TOKEN_ENV, API_TOKEN)
    token_file = tmp_path / "token"
    token_file.write_text(API_TOKEN)
    with pytest.raises(InvalidDriverOptions, match="exactly one") as info:
        build_driver(
            "purestorage",
            root=tmp_path,
            options={**base, "api_token_env": TOKEN_ENV, "api_token_file": str(token_file)},
        )
    assert API_TOKEN not in str(info.value)


# -- snapshots ----------------------------------------------------------------------------


async def test_snapshot_create_list_browse_delete(built: tuple[Driver, FakeFlashBlade]) -> None:
    driver, fake = built
    snapshots = snapshots_of(driver)
    mine = await vfolder_with(driver, {"a.txt": "first", "dir/b.txt": "inner"})
    other = await vfolder_with(driver, {"o.txt": "other"})

    info = await snapshots.create_snapshot(mine, name="s1")
    assert info.name == "s1" and info.created_at > 1e9
    (post,) = fake.requests_to("POST", "file-system-snapshots")
    assert post.url.params["source_names"] == FILE_SYSTEM
    assert post.read() == f'{{"suffix":"{mine.hex}-s1"}}'.encode()
    await snapshots.create_snapshot(other, name="s1")  # the same name, another vfolder
    await snapshots.create_snapshot(mine, name="s2")

    assert [s.name for s in await snapshots.list_snapshots(mine)] == ["s1", "s2"]
    assert [s.name for s in await snapshots.list_snapshots(other)] == ["s1"]
    listed = fake.requests_to("GET", "file-system-snapshots")[0].url.params
    assert listed["names_or_owner_names"] == FILE_SYSTEM
    assert listed["destroyed"] == "false"
    assert listed["filter"] == f"suffix='{mine.hex}-*'"

    # The snapshot's files: the vfolder as it was, through the safe file operations.
    (driver.vfolder_path(mine) / "a.txt").write_text("changed")
    files = snapshots.snapshot_files(mine, "s1")
    entries, more = await files.list_page(mine, ROOT, after=None, recursive=True, limit=10)
    assert sorted(str(e.path) for e in entries) == ["a.txt", "dir", "dir/b.txt"] and not more
    handle = await files.open_for_read(mine, parse_relative_path("a.txt"))
    try:
        assert await handle.read(0, 100) == b"first"
    finally:
        await handle.close()
    expected = (driver.root / ".snapshot" / f"{FILE_SYSTEM}.{mine.hex}-s1") / driver.vfolder_path(
        mine
    ).relative_to(driver.root)
    assert snapshots.snapshot_path(mine, "s1") == expected

    await snapshots.delete_snapshot(mine, name="s1")
    assert [s.name for s in await snapshots.list_snapshots(mine)] == ["s2"]
    (patch,) = fake.requests_to("PATCH", "file-system-snapshots")
    assert patch.url.params["names"] == f"{FILE_SYSTEM}.{mine.hex}-s1"
    assert patch.read() == b'{"destroyed":true}'
    assert len(fake.requests_to("DELETE", "file-system-snapshots")) == 1
    assert f"{FILE_SYSTEM}.{mine.hex}-s1" not in fake.snapshots
    assert [s.name for s in await snapshots.list_snapshots(other)] == ["s1"]

    with pytest.raises(SnapshotNotFound):
        await snapshots.delete_snapshot(mine, name="s1")
    with pytest.raises(SnapshotNotFound):
        await snapshots.delete_snapshot(other, name="s2")  # mine, not other's


async def test_snapshot_listing_follows_every_page(tmp_path: Path) -> None:
    driver, fake = fake_driver(tmp_path / "volume")
    await driver.initialize()
    fake.page_size = 2
    vfolder_id = await vfolder_with(driver, {})
    names = [f"s{i}" for i in range(5)]
    for name in names:
        await snapshots_of(driver).create_snapshot(vfolder_id, name=name)
    listed = await snapshots_of(driver).list_snapshots(vfolder_id)
    assert [s.name for s in listed] == names
    pages = fake.requests_to("GET", "file-system-snapshots")
    assert [r.url.params.get("continuation_token") for r in pages] == [None, "2", "4"]


async def test_deleting_keeps_a_destroyed_snapshot_when_not_eradicating(
    tmp_path: Path,
) -> None:
    driver, fake = fake_driver(tmp_path / "volume", eradicate_snapshots=False)
    await driver.initialize()
    vfolder_id = await vfolder_with(driver, {})
    await snapshots_of(driver).create_snapshot(vfolder_id, name="s1")
    await snapshots_of(driver).delete_snapshot(vfolder_id, name="s1")
    assert fake.snapshots[f"{FILE_SYSTEM}.{vfolder_id.hex}-s1"]["destroyed"] is True
    assert fake.requests_to("DELETE", "file-system-snapshots") == []
    assert await snapshots_of(driver).list_snapshots(vfolder_id) == []


async def test_an_eradication_that_went_through_before_its_retry_is_done(
    built: tuple[Driver, FakeFlashBlade],
) -> None:
    """The first DELETE eradicated but its answer was lost (502); the retry is refused as
    'does not exist', which is what was asked."""
    driver, fake = built
    vfolder_id = await vfolder_with(driver, {})
    await snapshots_of(driver).create_snapshot(vfolder_id, name="s1")
    full = f"{FILE_SYSTEM}.{vfolder_id.hex}-s1"
    original = fake._delete_snapshot

    def eradicate_then_lose_the_answer(
        request: httpx.Request, query: dict[str, str]
    ) -> httpx.Response:
        fake._delete_snapshot = original  # type: ignore[method-assign]
        original(request, query)
        return error(502, "Bad gateway.")

    fake._delete_snapshot = eradicate_then_lose_the_answer  # type: ignore[method-assign]
    await snapshots_of(driver).delete_snapshot(vfolder_id, name="s1")
    assert full not in fake.snapshots
    assert len(fake.requests_to("DELETE", "file-system-snapshots")) == 2


@pytest.mark.parametrize("name", ["with.dot", "under_score", "-dash-first", "x" * 31, ""])
async def test_names_flashblade_would_refuse_are_invalid(
    built: tuple[Driver, FakeFlashBlade], name: str
) -> None:
    driver, fake = built
    vfolder_id = await vfolder_with(driver, {})
    with pytest.raises(InvalidSnapshotName):
        await snapshots_of(driver).create_snapshot(vfolder_id, name=name)
    with pytest.raises(InvalidSnapshotName):
        snapshots_of(driver).snapshot_files(vfolder_id, name)
    assert fake.requests_to("POST", "file-system-snapshots") == []
    await snapshots_of(driver).create_snapshot(vfolder_id, name="x" * 30)  # the longest


async def test_a_snapshot_of_a_missing_vfolder_is_refused(
    built: tuple[Driver, FakeFlashBlade],
) -> None:
    driver, fake = built
    with pytest.raises(PathNotFound):
        await snapshots_of(driver).create_snapshot(uuid.uuid4(), name="s1")
    assert fake.snapshots == {}


async def test_restore_copies_the_snapshot_back_and_trashes_the_current_tree(
    built: tuple[Driver, FakeFlashBlade],
) -> None:
    driver, fake = built
    snapshots = snapshots_of(driver)
    vfolder_id = await vfolder_with(driver, {"a.txt": "first", "dir/b.txt": "inner"})
    await snapshots.create_snapshot(vfolder_id, name="s1")
    path = driver.vfolder_path(vfolder_id)
    (path / "a.txt").write_text("changed")
    (path / "new.txt").write_text("made later")
    mode = path.stat().st_mode

    await snapshots.restore_snapshot(vfolder_id, name="s1")
    assert (path / "a.txt").read_text() == "first"
    assert (path / "dir" / "b.txt").read_text() == "inner"
    assert not (path / "new.txt").exists()
    assert path.stat().st_mode == mode
    (entry,) = await driver.list_trash()
    assert entry.vfolder_id == vfolder_id and entry.holds_files
    assert (driver.root / ".trash" / entry.name / "new.txt").read_text() == "made later"
    assert list((driver.root / ".staging").iterdir()) == []
    assert fake.snapshots  # the snapshot stays

    with pytest.raises(SnapshotNotFound):
        await snapshots.restore_snapshot(vfolder_id, name="nope")


async def test_restore_when_the_snapshot_directory_is_not_visible(
    built: tuple[Driver, FakeFlashBlade],
) -> None:
    driver, _ = built
    vfolder_id = await vfolder_with(driver, {"a.txt": "first"})
    await snapshots_of(driver).create_snapshot(vfolder_id, name="s1")
    shutil.rmtree(driver.root / ".snapshot")
    with pytest.raises(BackendUnavailable, match="snapshot directory enabled"):
        await snapshots_of(driver).restore_snapshot(vfolder_id, name="s1")
    assert (driver.vfolder_path(vfolder_id) / "a.txt").read_text() == "first"


async def test_a_volume_below_the_mount_root(tmp_path: Path) -> None:
    """The volume is a directory inside the file system: snapshots show it below its path."""
    mount = tmp_path / "mnt"
    volume = mount / "vfroot" / "volume1"
    volume.mkdir(parents=True)
    driver, _ = fake_driver(volume, mount_root=str(mount))
    await driver.initialize()
    vfolder_id = await vfolder_with(driver, {"a.txt": "first"})
    await snapshots_of(driver).create_snapshot(vfolder_id, name="s1")
    shown = snapshots_of(driver).snapshot_path(vfolder_id, "s1")
    hex_id = vfolder_id.hex
    assert shown == (
        mount.resolve()
        / ".snapshot"
        / f"{FILE_SYSTEM}.{hex_id}-s1"
        / "vfroot"
        / "volume1"
        / hex_id[:2]
        / hex_id[2:4]
        / hex_id
    )
    assert (shown / "a.txt").read_text() == "first"


def test_the_version_under_test_is_the_default() -> None:
    assert PureStorageOptions.model_fields["api_version"].default == VERSION
