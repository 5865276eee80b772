"""The ``weka`` driver against the stateful fake of the Weka REST API v2 (fake.py): real files
on a directory standing for the wekafs mount, the management API scripted with respx."""

from __future__ import annotations

import json
import logging
import ssl
import uuid
from pathlib import Path

import certifi
import httpx
import pytest
from pydantic import SecretStr

from drivers.base import capabilities_of
from drivers.driver import Driver
from drivers.errors import (
    BackendApiError,
    BackendObjectNotFound,
    BackendUnavailable,
    InvalidDriverOptions,
    InvalidSnapshotName,
    SnapshotNotFound,
)
from drivers.paths import ROOT
from drivers.registry import build_driver
from drivers.rest.client import VendorClient
from drivers.weka import WekaOptions, weka_driver
from drivers.weka.client import WekaApi, WekaAuth
from tests.drivers.weka import PASSWORD_ENV, weka_options
from tests.drivers.weka.fake import ENDPOINT, FS_UID, ORG, PASSWORD, USERNAME, FakeWeka


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest.fixture
def fake(tmp_path: Path) -> FakeWeka:
    return FakeWeka((tmp_path / "mnt").resolve())


async def started(fake: FakeWeka, **options: object) -> Driver:
    assert fake.mount_point is not None
    driver = weka_driver(
        fake.mount_point / "volume",
        options=weka_options(mount_point=str(fake.mount_point), **options),
        transport=fake.transport(),
    )
    await driver.initialize()
    return driver


def vendor(fake: FakeWeka, *, retries: int = 2) -> tuple[WekaApi, WekaAuth, list[float]]:
    """The API client alone, with a clock the test moves."""
    now = [1000.0]
    auth = WekaAuth(
        endpoint=ENDPOINT,
        username=USERNAME,
        password=SecretStr(PASSWORD),
        org=ORG,
        clock=lambda: now[0],
    )
    opts = WekaOptions.model_validate(weka_options(retries=retries))
    client = VendorClient(
        vendor="weka", options=opts, auth=auth, backoff_seconds=0.01, transport=fake.transport()
    )
    return WekaApi(client), auth, now


# -- quota and usage ------------------------------------------------------------------------


async def test_quota_set_get_unset_and_usage_by_the_directorys_inode(fake: FakeWeka) -> None:
    driver = await started(fake)
    assert capabilities_of(driver) == ["fast-usage", "quota", "snapshot"]
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    path = driver.vfolder_path(vfolder_id)
    (path / "data.bin").write_bytes(b"x" * 1234)
    assert driver.quota is not None and driver.usage is not None

    assert await driver.quota.get_quota(vfolder_id) is None
    await driver.quota.set_quota(vfolder_id, limit_bytes=10 * 2**30)
    inode = path.stat().st_ino
    assert fake.quotas[inode]["hard_limit_bytes"] == 10 * 2**30
    assert ("PUT", f"/api/v2/fileSystems/{FS_UID}/quota/{inode}") in fake.calls
    assert await driver.quota.get_quota(vfolder_id) == 10 * 2**30
    assert await driver.usage.usage_bytes(vfolder_id) == 1234

    await driver.quota.set_quota(vfolder_id, limit_bytes=None)
    assert inode not in fake.quotas
    assert await driver.quota.get_quota(vfolder_id) is None
    await driver.quota.set_quota(vfolder_id, limit_bytes=None)  # unset twice is fine
    # Without a quota Weka counts nothing: no made-up 0, the caller answers otherwise.
    with pytest.raises(BackendObjectNotFound, match="no directory quota"):
        await driver.usage.usage_bytes(vfolder_id)
    await driver.aclose()


async def test_the_filesystem_is_resolved_once_by_name_or_given(fake: FakeWeka) -> None:
    driver = await started(fake)
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    assert driver.quota is not None
    await driver.quota.set_quota(vfolder_id, limit_bytes=1)
    await driver.quota.get_quota(vfolder_id)
    assert fake.calls.count(("GET", "/api/v2/fileSystems")) == 1

    fake.calls.clear()
    given = await started(fake, filesystem=None, filesystem_uid=FS_UID)
    assert given.quota is not None
    assert await given.quota.get_quota(vfolder_id) == 1
    assert ("GET", "/api/v2/fileSystems") not in fake.calls

    with pytest.raises(BackendObjectNotFound, match=r"no filesystem named 'nope'.*default"):
        await started(fake, filesystem="nope")


async def test_both_quota_record_shapes_are_read(fake: FakeWeka) -> None:
    api, _, _ = vendor(fake)
    fake.quota_answers[7] = httpx.Response(
        200, json={"data": {"inode_id": 7, "hard_limit_bytes": 5, "used_bytes": 3}}
    )
    fake.quota_answers[8] = httpx.Response(
        200, json={"message": "Directory has no quota", "data": {}}
    )
    assert await api.quota(FS_UID, 7) == {"inode_id": 7, "hard_limit_bytes": 5, "used_bytes": 3}
    assert await api.quota(FS_UID, 8) is None


# -- snapshots ------------------------------------------------------------------------------


async def test_snapshots_per_vfolder_browse_restore_delete(fake: FakeWeka) -> None:
    driver = await started(fake)
    snapshots = driver.snapshots
    assert snapshots is not None
    mine, other = uuid.uuid4(), uuid.uuid4()
    for vfolder_id in (mine, other):
        await driver.create_vfolder(vfolder_id)
    path = driver.vfolder_path(mine)
    (path / "a.txt").write_text("version 1")
    assert driver.quota is not None
    await driver.quota.set_quota(mine, limit_bytes=2**20)
    inode = path.stat().st_ino

    info = await snapshots.create_snapshot(mine, name="s1")
    assert info.name == "s1" and info.created_at > 1.7e9
    posted = json.loads(fake.router.calls[-1].request.content)
    weka_name = f"sp-{mine.hex}-s1"
    assert posted == {
        "fs_uid": FS_UID,
        "name": weka_name,
        "access_point": weka_name,
        "is_writable": False,
    }
    await snapshots.create_snapshot(other, name="s1")
    fake.snapshots["foreign"] = {"uid": "foreign", "name": "nightly", "creationTime": "bad"}
    assert [s.name for s in await snapshots.list_snapshots(mine)] == ["s1"]

    # Browsed where Weka shows it: .snapshots/<access point>/<vfolder path under the mount>.
    files = snapshots.snapshot_files(mine, "s1")
    entries, more = await files.list_page(mine, ROOT, after=None, recursive=False, limit=10)
    assert [e.name for e in entries] == ["a.txt"] and not more

    (path / "a.txt").write_text("version 2")
    (path / "new.txt").write_text("made later")
    await snapshots.restore_snapshot(mine, name="s1")
    reserved = driver.files.reserved_names
    assert sorted(p.name for p in path.iterdir() if p.name not in reserved) == ["a.txt"]
    assert all(not any((path / name).iterdir()) for name in reserved if (path / name).exists())
    assert (path / "a.txt").read_text() == "version 1"
    # The same directory, so its quota (keyed by its inode) is still the vfolder's.
    assert path.stat().st_ino == inode
    assert await driver.quota.get_quota(mine) == 2**20

    await snapshots.delete_snapshot(mine, name="s1")
    assert [s.name for s in await snapshots.list_snapshots(mine)] == []
    assert [s.name for s in await snapshots.list_snapshots(other)] == ["s1"]
    with pytest.raises(SnapshotNotFound):
        await snapshots.delete_snapshot(mine, name="s1")
    with pytest.raises(SnapshotNotFound):
        await snapshots.restore_snapshot(mine, name="s1")
    with pytest.raises(InvalidSnapshotName):
        await snapshots.create_snapshot(mine, name="../escape")
    with pytest.raises(InvalidSnapshotName):
        snapshots.snapshot_files(mine, "a/b")


async def test_a_snapshot_post_that_fails_is_not_sent_twice(fake: FakeWeka) -> None:
    driver = await started(fake)
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    route = fake.router.post("/api/v2/snapshots").mock(
        return_value=httpx.Response(500, json={"message": "Internal error", "data": None})
    )
    assert driver.snapshots is not None
    with pytest.raises(BackendApiError, match="Internal error"):
        await driver.snapshots.create_snapshot(vfolder_id, name="s1")
    assert route.call_count == 1


# -- the client: auth, retries, errors --------------------------------------------------------


async def test_one_login_for_many_calls(fake: FakeWeka) -> None:
    api, auth, _ = vendor(fake)
    for _ in range(5):
        await api.cluster()
    assert fake.logins == 1 and auth.logins == 1


async def test_a_401_renews_once_with_the_refresh_token(fake: FakeWeka) -> None:
    api, auth, _ = vendor(fake)
    await api.cluster()
    fake.expire_tokens()
    await api.cluster()
    assert (fake.logins, fake.refreshes) == (1, 1)
    assert (auth.logins, auth.refreshes) == (1, 1)


async def test_a_refused_refresh_falls_back_to_exactly_one_login(fake: FakeWeka) -> None:
    api, _, _ = vendor(fake)
    await api.cluster()
    fake.expire_tokens(refresh_too=True)
    await api.cluster()
    assert (fake.logins, fake.refreshes) == (2, 0)
    assert fake.calls.count(("POST", "/api/v2/login")) == 2


async def test_a_401_that_persists_is_an_error_not_a_loop(fake: FakeWeka) -> None:
    api, _, _ = vendor(fake)
    route = fake.router.get("/api/v2/cluster").mock(
        return_value=httpx.Response(401, json={"message": "Unauthorized", "data": None})
    )
    with pytest.raises(BackendApiError, match=r"401.*Unauthorized"):
        await api.cluster()
    assert route.call_count == 2  # the call, then once after renewing
    assert fake.logins + fake.refreshes == 2


async def test_the_token_is_renewed_ahead_of_its_expiry(fake: FakeWeka) -> None:
    api, _, now = vendor(fake)
    await api.cluster()
    now[0] += 300 - 10  # within the last 30 s of its 300 s
    await api.cluster()
    assert (fake.logins, fake.refreshes) == (1, 1)
    assert ("GET", "/api/v2/cluster") in fake.calls
    # No call was refused on the way.
    assert all(not c.response or c.response.status_code != 401 for c in fake.router.calls)


async def test_a_refused_login_says_so_without_the_password(
    fake: FakeWeka, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong-password-123")
    caplog.set_level(logging.DEBUG)
    driver = weka_driver(
        fake.mount_point or Path(), options=weka_options(), transport=fake.transport()
    )
    with pytest.raises(BackendApiError, match="log-in refused \\(401\\): Invalid username") as exc:
        await driver.initialize()
    for text in (str(exc.value), repr(exc.value), caplog.text, repr(driver.management)):
        assert "wrong-password-123" not in text


async def test_a_get_is_retried_on_5xx(fake: FakeWeka) -> None:
    api, _, _ = vendor(fake)
    route = fake.router.get("/api/v2/cluster").mock(
        side_effect=[
            httpx.Response(503, json={"message": "busy", "data": None}),
            httpx.Response(200, json={"data": {"name": "weka-test"}}),
        ]
    )
    await api.cluster()
    assert route.call_count == 2


async def test_a_timeout_is_backend_unavailable(fake: FakeWeka) -> None:
    api, _, _ = vendor(fake, retries=1)
    fake.router.get("/api/v2/cluster").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(BackendUnavailable, match="timed out"):
        await api.cluster()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"data": {"inode_id": 7, "used_bytes": "lots"}}, "used_bytes is 'lots'"),
        ({"data": ["not", "a", "record"]}, "no data object"),
        ({"nodata": 1}, "no data object"),
        ({"data": {"a": {"used_bytes": 1}, "b": {"used_bytes": 2}}}, "not one quota record"),
    ],
)
async def test_a_malformed_quota_answer_is_a_clear_api_error(
    fake: FakeWeka, body: object, expected: str
) -> None:
    driver = await started(fake)
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    inode = driver.vfolder_path(vfolder_id).stat().st_ino
    fake.quota_answers[inode] = httpx.Response(200, json=body)
    assert driver.usage is not None
    with pytest.raises(BackendApiError, match=expected):
        await driver.usage.usage_bytes(vfolder_id)


async def test_a_malformed_login_answer_is_a_clear_api_error(fake: FakeWeka) -> None:
    api, _, _ = vendor(fake)
    fake.router.post("/api/v2/login").mock(return_value=httpx.Response(200, json={"data": {}}))
    with pytest.raises(BackendApiError, match=r"no data\.access_token"):
        await api.cluster()
    fake.router.post("/api/v2/login").mock(return_value=httpx.Response(200, text="<html>"))
    with pytest.raises(BackendApiError, match="not JSON"):
        await api.cluster()


async def test_health_probe(fake: FakeWeka) -> None:
    driver = await started(fake)
    assert driver.management is not None
    assert (await driver.management.check()).reachable
    await driver.aclose()


# -- options and credentials ------------------------------------------------------------------


def test_tls_verified_by_default_and_a_ca_bundle_is_used(tmp_path: Path) -> None:
    driver = weka_driver(tmp_path, options=weka_options())
    assert driver.management is not None
    client = driver.management.client  # type: ignore[attr-defined]
    assert client._settings["verify"] is True
    bundled = weka_driver(tmp_path, options=weka_options(ca_bundle=certifi.where()))
    verify = bundled.management.client._settings["verify"]  # type: ignore[union-attr]
    assert isinstance(verify, ssl.SSLContext) and verify.verify_mode == ssl.CERT_REQUIRED


async def test_the_password_is_read_from_a_file(
    fake: FakeWeka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV)
    secret = tmp_path / "weka-password"
    secret.write_text(PASSWORD + "\n")
    await started(fake, password_env=None, password_file=str(secret))
    assert fake.logins == 1


def test_credentials_never_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    options = WekaOptions.model_validate(weka_options())
    driver = weka_driver(tmp_path, options=options)
    for text in (repr(options), repr(driver.management), repr(driver.__dict__)):
        assert PASSWORD not in text
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(InvalidDriverOptions, match=PASSWORD_ENV) as exc:
        build_driver("weka", root=tmp_path, options=weka_options())
    assert PASSWORD not in str(exc.value)


@pytest.mark.parametrize(
    "options",
    [
        weka_options(bogus=1),
        weka_options(filesystem_uid=FS_UID),  # and filesystem: one of them
        weka_options(filesystem=None),
        weka_options(password_file="/run/secrets/weka"),  # and password_env
    ],
)
def test_bad_options_are_refused(tmp_path: Path, options: dict[str, object]) -> None:
    with pytest.raises(InvalidDriverOptions):
        build_driver("weka", root=tmp_path, options=options)
