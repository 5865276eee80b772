"""The vast driver against a fake VMS (tests/drivers/vast/__init__.py): quotas, usage,
snapshots, authentication, retries, time-outs, malformed answers, TLS and credentials."""

from __future__ import annotations

import logging
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
    BackendObjectNotFound,
    BackendUnavailable,
    InvalidDriverOptions,
    InvalidSnapshotName,
    SnapshotNotFound,
)
from drivers.paths import ROOT, RelativePath
from drivers.registry import build_driver
from drivers.vast import VastQuota, VastSnapshots, vast_driver
from drivers.vast.api import VastTokenAuth, vast_message
from tests.drivers.vast import (
    API_TOKEN,
    BASE,
    ENDPOINT,
    PASSWORD,
    FakeVast,
    fake_driver,
    options,
    problem,
)

MiB = 1024 * 1024


async def made(root: Path, **extra: object) -> tuple[Driver, FakeVast, uuid.UUID]:
    driver, fake = fake_driver(root, **extra)
    await driver.initialize()
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    return driver, fake, vfolder_id


def storage_path(vfolder_id: uuid.UUID) -> str:
    h = vfolder_id.hex
    return f"{BASE}/{h[:2]}/{h[2:4]}/{h}"


def quota_of(driver: Driver) -> VastQuota:
    assert isinstance(driver.quota, VastQuota)
    return driver.quota


def snapshots_of(driver: Driver) -> VastSnapshots:
    assert isinstance(driver.snapshots, VastSnapshots)
    return driver.snapshots


def test_capabilities(tmp_path: Path) -> None:
    driver, _ = fake_driver(tmp_path / "volume")
    assert capabilities_of(driver) == ["fast-usage", "quota", "snapshot"]
    assert driver.management is not None


# --- quotas and usage ---------------------------------------------------------------------


async def test_quota_set_get_unset(tmp_path: Path) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    quota = quota_of(driver)
    assert await quota.get_quota(vfolder_id) is None

    await quota.set_quota(vfolder_id, limit_bytes=10 * MiB)
    create = fake.bodies[fake.calls.index(("POST", "/api/v2/quotas/"))]
    assert create == {
        "name": f"storage-proxy-{vfolder_id.hex}",
        "path": storage_path(vfolder_id),
        "create_dir": False,
        "soft_limit": 10 * MiB,
        "hard_limit": 10 * MiB,
    }
    assert await quota.get_quota(vfolder_id) == 10 * MiB

    await quota.set_quota(vfolder_id, limit_bytes=20 * MiB)
    assert fake.count("POST", "/quotas/") == 1  # patched, not made again
    (quota_id,) = fake.quotas
    assert fake.count("PATCH", f"/quotas/{quota_id}/") == 1
    assert await quota.get_quota(vfolder_id) == 20 * MiB

    await quota.set_quota(vfolder_id, limit_bytes=None)
    assert fake.count("DELETE", f"/quotas/{quota_id}/") == 1
    assert fake.quotas == {}
    assert await quota.get_quota(vfolder_id) is None
    await quota.set_quota(vfolder_id, limit_bytes=None)  # unset twice: nothing to do
    assert fake.count("DELETE", f"/quotas/{quota_id}/") == 1


async def test_usage_is_the_quota_objects_used_capacity(tmp_path: Path) -> None:
    driver, _fake, vfolder_id = await made(tmp_path / "volume")
    quota = quota_of(driver)
    with pytest.raises(BackendObjectNotFound, match="no quota object"):
        await quota.usage_bytes(vfolder_id)
    (driver.vfolder_path(vfolder_id) / "data").write_bytes(b"x" * 1500)
    await quota.set_quota(vfolder_id, limit_bytes=MiB)
    assert await quota.usage_bytes(vfolder_id) == 1500


async def test_an_existing_quota_object_is_adopted(tmp_path: Path) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    existing = fake.add_quota(storage_path(vfolder_id), 5 * MiB)
    await quota_of(driver).set_quota(vfolder_id, limit_bytes=7 * MiB)
    assert fake.count("POST", "/quotas/") == 0
    assert fake.quotas[existing]["hard_limit"] == 7 * MiB
    assert len(fake.quotas) == 1


async def test_a_quota_made_meanwhile_is_adopted_after_400(tmp_path: Path) -> None:
    """The lookup found nothing, then the POST says it exists (another node was quicker):
    adopted and patched, not an error."""
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    existing = fake.add_quota(storage_path(vfolder_id), 5 * MiB)
    fake.inject("GET", "/quotas/", httpx.Response(200, json=[]))
    await quota_of(driver).set_quota(vfolder_id, limit_bytes=7 * MiB)
    assert fake.count("POST", "/quotas/") == 1
    assert fake.quotas[existing]["hard_limit"] == 7 * MiB
    assert len(fake.quotas) == 1


async def test_a_400_for_another_reason_is_raised_with_the_vendor_message(tmp_path: Path) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    fake.inject(
        "POST",
        "/quotas/",
        problem(400, {"hard_limit": ["Ensure this value is greater than or equal to 1."]}),
    )
    with pytest.raises(BackendApiError, match="hard_limit: Ensure this value") as caught:
        await quota_of(driver).set_quota(vfolder_id, limit_bytes=MiB)
    assert caught.value.status == 400
    assert fake.quotas == {}


async def test_a_503_on_create_is_an_outage_not_already_exists_and_not_resent(
    tmp_path: Path,
) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    fake.inject("POST", "/quotas/", problem(503, {"detail": "Service unavailable"}))
    with pytest.raises(BackendApiError, match="503") as caught:
        await quota_of(driver).set_quota(vfolder_id, limit_bytes=MiB)
    assert not isinstance(caught.value, BackendObjectNotFound)
    assert fake.count("POST", "/quotas/") == 1  # a POST whose outcome is unknown: once
    assert fake.count("GET", "/quotas/") == 1  # the lookup before it, no adoption after


async def test_a_quota_object_deleted_behind_our_back_is_made_again(tmp_path: Path) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    quota = quota_of(driver)
    await quota.set_quota(vfolder_id, limit_bytes=MiB)
    fake.quotas.clear()  # an administrator removed it
    assert await quota.get_quota(vfolder_id) is None  # 404 "Not found.": no object
    await quota.set_quota(vfolder_id, limit_bytes=2 * MiB)
    assert [q["hard_limit"] for q in fake.quotas.values()] == [2 * MiB]


async def test_not_found_maps_to_backend_object_not_found(tmp_path: Path) -> None:
    driver, _fake, _ = await made(tmp_path / "volume")
    with pytest.raises(BackendObjectNotFound, match=r"404: Not found\."):
        await quota_of(driver).api.get_quota(999)


async def test_quota_on_a_missing_vfolder_directory(tmp_path: Path) -> None:
    driver, fake, _ = await made(tmp_path / "volume")
    from drivers.errors import VFolderDirectoryMissing

    with pytest.raises(VFolderDirectoryMissing):
        await quota_of(driver).set_quota(uuid.uuid4(), limit_bytes=MiB)
    assert fake.count("POST", "/quotas/") == 0


def test_storage_base_path_maps_the_mount(tmp_path: Path) -> None:
    driver, _ = fake_driver(tmp_path / "volume", storage_base_path="/tenants/a/")
    vfolder_id = uuid.uuid4()
    h = vfolder_id.hex
    paths = quota_of(driver).paths
    assert paths.of(driver.vfolder_path(vfolder_id)) == f"/tenants/a/{h[:2]}/{h[2:4]}/{h}"
    with pytest.raises(InvalidDriverOptions, match="absolute"):
        build_driver("vast", root=tmp_path, options=options(tmp_path, storage_base_path="relative"))


# --- snapshots ------------------------------------------------------------------------------


async def test_snapshot_create_list_browse_restore_delete(tmp_path: Path) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    snapshots = snapshots_of(driver)
    root = driver.vfolder_path(vfolder_id)
    (root / "a.txt").write_text("v1")
    (root / "dir").mkdir()
    (root / "dir" / "inner").write_text("in")

    info = await snapshots.create_snapshot(vfolder_id, name="s1")
    assert info.name == "s1" and info.created_at > 0
    assert fake.bodies[fake.calls.index(("POST", "/api/v2/snapshots/"))] == {
        "name": f"{vfolder_id.hex}_s1",
        "path": storage_path(vfolder_id) + "/",
    }
    # A snapshot of another directory, and one of this path not made by us, are not ours.
    fake.add_snapshot("weekly-policy", storage_path(vfolder_id) + "/")
    fake.add_snapshot(f"{uuid.uuid4().hex}_s1", f"{BASE}/elsewhere/")
    assert [s.name for s in await snapshots.list_snapshots(vfolder_id)] == ["s1"]

    (root / "a.txt").write_text("v2-longer")
    (root / "b.txt").write_text("new")

    browsed = snapshots.snapshot_files(vfolder_id, "s1")
    entries, more = await browsed.list_page(vfolder_id, ROOT, after=None, recursive=True, limit=10)
    assert sorted("/".join(e.path.parts) for e in entries) == ["a.txt", "dir", "dir/inner"]
    assert not more
    handle = await browsed.open_for_read(vfolder_id, RelativePath(("a.txt",)))
    try:
        assert await handle.read(0, 100) == b"v1"
    finally:
        await handle.close()

    await snapshots.restore_snapshot(vfolder_id, name="s1")
    assert (root / "a.txt").read_text() == "v1"
    assert (root / "dir" / "inner").read_text() == "in"
    assert not (root / "b.txt").exists()
    trashed = await driver.list_trash()
    assert len(trashed) == 1 and trashed[0].holds_files
    assert (driver.root / ".trash" / trashed[0].name / "b.txt").read_text() == "new"
    assert sorted(p.name for p in (root / ".sp-staging").iterdir()) == []
    assert (root / ".snapshot" / f"{vfolder_id.hex}_s1").is_dir()  # the cluster's, left alone

    await snapshots.delete_snapshot(vfolder_id, name="s1")
    assert [s.name for s in await snapshots.list_snapshots(vfolder_id)] == []
    with pytest.raises(SnapshotNotFound):
        await snapshots.delete_snapshot(vfolder_id, name="s1")
    with pytest.raises(SnapshotNotFound):
        await snapshots.restore_snapshot(vfolder_id, name="s1")


async def test_snapshot_names_are_checked(tmp_path: Path) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    snapshots = snapshots_of(driver)
    for bad in ("../x", "", ".hidden", "a/b", "x" * 65):
        with pytest.raises(InvalidSnapshotName):
            await snapshots.create_snapshot(vfolder_id, name=bad)
        with pytest.raises(InvalidSnapshotName):
            snapshots.snapshot_files(vfolder_id, bad)
    assert fake.count("POST", "/snapshots/") == 0


async def test_snapshot_deleted_meanwhile_is_not_found(tmp_path: Path) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    snapshots = snapshots_of(driver)
    await snapshots.create_snapshot(vfolder_id, name="s1")
    (snapshot_id,) = fake.snapshots
    fake.inject("DELETE", f"/snapshots/{snapshot_id}/", problem(404, {"detail": "Not found."}))
    with pytest.raises(SnapshotNotFound):
        await snapshots.delete_snapshot(vfolder_id, name="s1")


# --- authentication ---------------------------------------------------------------------------


async def test_logs_in_once_and_renews_on_401(tmp_path: Path) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    quota = quota_of(driver)
    async with anyio.create_task_group() as tg:  # concurrent first calls: one log-in
        for _ in range(5):
            tg.start_soon(quota.get_quota, vfolder_id)
    await quota.get_quota(vfolder_id)
    assert fake.logins == 1
    assert fake.count("POST", "/token/") == 1

    fake.expire_access()  # the access token expired: the refresh token renews it
    assert await quota.get_quota(vfolder_id) is None
    assert (fake.logins, fake.refreshes) == (1, 1)

    fake.expire_all()  # both expired: the refresh is refused, exactly one new log-in
    assert await quota.get_quota(vfolder_id) is None
    assert (fake.logins, fake.refreshes) == (2, 1)
    assert fake.count("POST", "/token/refresh/") == 2
    await quota.get_quota(vfolder_id)
    assert fake.logins == 2


async def test_refused_log_in_is_an_api_error_without_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = tmp_path / "wrong"
    secret.write_text("not-the-password")
    fake = FakeVast((tmp_path / "volume").resolve())
    opts = options(tmp_path, password_file=str(secret))
    driver = vast_driver(tmp_path / "volume", options=opts, transport=fake.transport())
    await driver.initialize()
    assert driver.management is not None
    health = await driver.management.check()
    assert not health.reachable
    assert health.detail is not None and "log-in refused (401)" in health.detail
    assert "No active account" in health.detail
    with pytest.raises(BackendApiError, match="log-in refused") as caught:
        await quota_of(driver).get_quota(uuid.uuid4())
    assert "not-the-password" not in str(caught.value)
    assert "not-the-password" not in caplog.text


async def test_api_token_and_tenant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAST_TEST_TOKEN", API_TOKEN)
    fake = FakeVast((tmp_path / "volume").resolve(), version="v5", api_token=API_TOKEN)
    driver = vast_driver(
        tmp_path / "volume",
        options={
            "endpoint": ENDPOINT,
            "storage_base_path": BASE,
            "api_token_env": "VAST_TEST_TOKEN",
            "tenant": "research",
            "api_version": "v5",
        },
        transport=fake.transport(),
    )
    assert driver.management is not None
    assert (await driver.management.check()).reachable
    assert fake.count("GET", "/clusters/") == 1
    assert fake.headers[-1]["Authorization"] == f"Api-Token {API_TOKEN}"
    assert fake.headers[-1]["X-Tenant-Name"] == "research"
    assert fake.logins == 0


# --- transport: retries, time-outs, malformed answers, TLS ------------------------------------


async def test_a_get_is_retried_on_5xx(tmp_path: Path) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    fake.inject("GET", "/quotas/", problem(502, {"detail": "Bad gateway"}))
    assert await quota_of(driver).get_quota(vfolder_id) is None
    assert fake.count("GET", "/quotas/") == 2


async def test_a_post_with_5xx_is_not_retried(tmp_path: Path) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    fake.inject("POST", "/snapshots/", problem(500, {"detail": "Internal error"}))
    with pytest.raises(BackendApiError, match="500: Internal error"):
        await snapshots_of(driver).create_snapshot(vfolder_id, name="s1")
    assert fake.count("POST", "/snapshots/") == 1


async def test_a_timeout_is_backend_unavailable(tmp_path: Path) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume", retries=1)
    fake.inject("GET", "/quotas/", httpx.ReadTimeout("slow"), httpx.ReadTimeout("slow again"))
    with pytest.raises(BackendUnavailable, match="timed out") as caught:
        await quota_of(driver).get_quota(vfolder_id)
    assert not isinstance(caught.value, BackendApiError)
    assert fake.count("GET", "/quotas/") == 2  # the GET was retried once, then given up


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"unexpected": True}),
        httpx.Response(200, json=[{"id": "seven", "path": "/x"}]),
        httpx.Response(200, json=[{"path": "/x"}]),
        httpx.Response(200, json=["not an object"]),
        httpx.Response(200, text="<html>maintenance</html>"),
    ],
)
async def test_a_malformed_answer_is_an_api_error(tmp_path: Path, answer: httpx.Response) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    fake.inject("GET", "/quotas/", answer)
    with pytest.raises(BackendApiError, match="malformed answer"):
        await quota_of(driver).get_quota(vfolder_id)


async def test_a_malformed_usage_figure_is_an_api_error(tmp_path: Path) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    path = storage_path(vfolder_id)
    fake.inject(
        "GET",
        "/quotas/",
        httpx.Response(200, json=[{"id": 3, "path": path, "used_capacity": "12"}]),
    )
    with pytest.raises(BackendApiError, match="used_capacity is str"):
        await quota_of(driver).usage_bytes(vfolder_id)


async def test_a_log_in_answer_without_a_token_is_an_api_error(tmp_path: Path) -> None:
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    fake.inject("POST", "/token/", httpx.Response(200, json={"token": "x"}))
    with pytest.raises(BackendApiError, match="malformed answer: no access"):
        await quota_of(driver).get_quota(vfolder_id)


def test_vendor_error_bodies() -> None:
    assert vast_message({"detail": "Not found."}) == ("Not found.", None)
    assert vast_message({"detail": "Bad", "code": "token_not_valid"}) == ("Bad", "token_not_valid")
    assert vast_message({"path": ["exists."], "name": "bad"}) == ("path: exists.; name: bad", None)
    assert vast_message(["one", "two"]) == ("one; two", None)
    assert vast_message(None) == (None, None)


def test_tls_verified_by_default_and_ca_bundle_passed(tmp_path: Path) -> None:
    driver, _ = fake_driver(tmp_path / "volume")
    client = quota_of(driver).api.client
    assert client._settings["verify"] is True
    driver, _ = fake_driver(tmp_path / "volume", ca_bundle=certifi.where())
    assert isinstance(quota_of(driver).api.client._settings["verify"], ssl.SSLContext)
    driver, _ = fake_driver(tmp_path / "volume", verify_tls=False)
    assert quota_of(driver).api.client._settings["verify"] is False
    with pytest.raises(InvalidDriverOptions, match="ca_bundle"):
        build_driver(
            "vast",
            root=tmp_path,
            options=options(tmp_path, ca_bundle=str(tmp_path / "missing.pem")),
        )


# --- credentials and options --------------------------------------------------------------


async def test_password_from_env_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("VAST_TEST_PASSWORD", PASSWORD)
    opts = {
        "endpoint": ENDPOINT,
        "storage_base_path": BASE,
        "username": "sp-admin",
        "password_env": "VAST_TEST_PASSWORD",
        "retries": 0,
    }
    fake = FakeVast((tmp_path / "volume").resolve())
    driver = vast_driver(tmp_path / "volume", options=opts, transport=fake.transport())
    assert driver.management is not None
    assert (await driver.management.check()).reachable
    assert fake.logins == 1
    auth = quota_of(driver).api.client._settings["auth"]
    assert isinstance(auth, VastTokenAuth)
    for shown in (repr(auth), repr(driver.quota), repr(driver.management), caplog.text):
        assert PASSWORD not in shown
    fake.inject("GET", "/quotas/", problem(500, {"detail": "boom"}))
    with pytest.raises(BackendApiError) as caught:
        await quota_of(driver).get_quota(uuid.uuid4())
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"password_file": None}, "either username"),
        ({"api_token_env": "X"}, "either username"),
        ({"username": None}, "username is needed"),
        ({"storage_base_path": "/a/../b"}, "absolute"),
        ({"api_version": "2"}, "v<number>"),
        ({"snapshot_dir": "a/b"}, "one directory name"),
        ({"passwd": "x"}, "no option 'passwd'"),
    ],
)
def test_options_are_checked(tmp_path: Path, extra: dict[str, object], message: str) -> None:
    opts = {**options(tmp_path), **extra}
    opts = {k: v for k, v in opts.items() if v is not None}
    with pytest.raises(InvalidDriverOptions, match=message):
        build_driver("vast", root=tmp_path, options=opts)


def test_missing_secret_is_named_not_shown(tmp_path: Path) -> None:
    opts = {**options(tmp_path), "password_file": str(tmp_path / "absent")}
    with pytest.raises(InvalidDriverOptions, match="password_file: cannot read"):
        build_driver("vast", root=tmp_path, options=opts)
    opts = {k: v for k, v in options(tmp_path).items() if k != "password_file"}
    opts["password_env"] = "VAST_TEST_UNSET_VARIABLE"
    with pytest.raises(InvalidDriverOptions, match="VAST_TEST_UNSET_VARIABLE is not set"):
        build_driver("vast", root=tmp_path, options=opts)


async def test_health_probe(tmp_path: Path) -> None:
    driver, fake, _ = await made(tmp_path / "volume", retries=0, health_cache_seconds=0)
    assert driver.management is not None
    assert (await driver.management.check()).reachable
    fake.inject("GET", "/clusters/", problem(500, {"detail": "VMS is restarting"}))
    health = await driver.management.check()
    assert not health.reachable and health.detail is not None
    assert "VMS is restarting" in health.detail
    await driver.aclose()


async def test_a_paged_list_is_followed(tmp_path: Path) -> None:
    """A VMS answering with DRF pages (``{"results", "next"}``) instead of a bare list."""
    driver, fake, vfolder_id = await made(tmp_path / "volume")
    quota_id = fake.add_quota(storage_path(vfolder_id), 3 * MiB)
    following = f"{ENDPOINT}/api/v2/quotas/?page=2&path={storage_path(vfolder_id)}"
    fake.inject("GET", "/quotas/", httpx.Response(200, json={"results": [], "next": following}))
    assert await quota_of(driver).get_quota(vfolder_id) == 3 * MiB
    assert fake.count("GET", "/quotas/") == 2
    assert fake.quotas[quota_id]["hard_limit"] == 3 * MiB
