"""The ``dellemc`` (OneFS) backend against a stateful respx fake of PAPI (fake.py), on a
real local directory standing for the NFS mount."""

from __future__ import annotations

import json
import logging
import shutil
import ssl
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from drivers.base import capabilities_of
from drivers.dellemc import OneFsOptions, dellemc_driver
from drivers.driver import Driver
from drivers.errors import (
    BackendApiError,
    BackendObjectNotFound,
    BackendUnavailable,
    InvalidDriverOptions,
    InvalidSnapshotName,
    PathNotFound,
    SnapshotNotFound,
)
from drivers.paths import ROOT, parse_relative_path
from drivers.registry import build_driver, canonical_driver_name
from tests.drivers.dellemc.fake import (
    ENDPOINT,
    IFS_PATH,
    PASSWORD,
    PASSWORD_ENV,
    QUOTAS,
    SNAPSHOTS,
    FakeOneFs,
    error,
    options,
)


@pytest.fixture(autouse=True)
def password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest.fixture
def fake(tmp_path: Path) -> FakeOneFs:
    return FakeOneFs(root=(tmp_path / "volume").resolve())


def build(fake: FakeOneFs, **overrides: Any) -> Driver:
    driver = dellemc_driver(fake.root, options=options(**overrides), transport=fake.transport)
    assert isinstance(driver, Driver)
    return driver


@pytest.fixture
async def driver(fake: FakeOneFs) -> Driver:
    built = build(fake)
    await built.initialize()
    return built


def ifs_of(driver: Driver, vfolder_id: uuid.UUID) -> str:
    rel = driver.vfolder_path(vfolder_id).relative_to(driver.root)
    return f"{IFS_PATH}/{rel.as_posix()}"


def quota_at(fake: FakeOneFs, path: str) -> dict[str, Any]:
    (found,) = [q for q in fake.quotas.values() if q["path"] == path]
    return found


# -- registration and options ----------------------------------------------------------------


def test_registered_under_its_name_and_backend_ais(fake: FakeOneFs) -> None:
    assert canonical_driver_name("dellemc-onefs") == "dellemc"
    built = build_driver("dellemc-onefs", root=fake.root, options=options())
    assert built.backend == "dellemc"
    assert capabilities_of(built) == ["fast-usage", "quota", "snapshot"]


@pytest.mark.parametrize(
    ("bad", "complaint"),
    [
        ({"ifs_path": "/data/bai"}, "under /ifs"),
        ({"ifs_path": "/ifs/../etc"}, "under /ifs"),
        ({"password": "inline"}, "no option 'password'"),
        ({"snapshot_prefix": "a/b"}, "snapshot_prefix"),
        ({"auth": "kerberos"}, "auth"),
    ],
)
def test_bad_options_fail_at_start(fake: FakeOneFs, bad: dict[str, Any], complaint: str) -> None:
    with pytest.raises(InvalidDriverOptions, match=complaint):
        build_driver("dellemc", root=fake.root, options=options(**bad))


def test_password_from_a_file_and_never_shown(tmp_path: Path, fake: FakeOneFs) -> None:
    secret = tmp_path / "onefs-password"
    secret.write_text(PASSWORD + "\n")
    opts = options(password_env=None, password_file=str(secret))
    built = build_driver("dellemc", root=fake.root, options=opts)
    assert isinstance(built, Driver)
    assert PASSWORD not in repr(OneFsOptions.model_validate(opts))
    assert PASSWORD not in repr(built.management) + repr(vars(built))


def test_missing_password_is_refused_without_a_value(
    fake: FakeOneFs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(InvalidDriverOptions, match=PASSWORD_ENV):
        build_driver("dellemc", root=fake.root, options=options())
    with pytest.raises(InvalidDriverOptions, match="exactly one"):
        build_driver("dellemc", root=fake.root, options=options(password_env=None))


# -- quota -------------------------------------------------------------------------------------


async def test_a_new_vfolder_gets_an_accounting_quota_on_its_ifs_path(
    driver: Driver, fake: FakeOneFs
) -> None:
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    quota = quota_at(fake, ifs_of(driver, vfolder_id))
    h = vfolder_id.hex
    assert quota["path"] == f"/ifs/data/sp/{h[:2]}/{h[2:4]}/{h}"  # the /ifs path, not local
    assert quota["type"] == "directory" and quota["enforced"] is False
    assert quota["include_snapshots"] is False and quota["thresholds_on"] == "fslogicalsize"
    # No id cached in a dot-file in the vfolder (BAI's .quota_id): found by path.
    assert list(driver.vfolder_path(vfolder_id).iterdir()) == []
    await driver.create_vfolder(vfolder_id)  # replayed: still one quota
    assert len(fake.quotas) == 1


async def test_quota_set_get_unset(driver: Driver, fake: FakeOneFs) -> None:
    assert driver.quota is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    assert await driver.quota.get_quota(vfolder_id) is None
    await driver.quota.set_quota(vfolder_id, limit_bytes=10 * 2**30)
    quota = quota_at(fake, ifs_of(driver, vfolder_id))
    assert quota["thresholds"]["hard"] == 10 * 2**30 and quota["enforced"] is True
    assert await driver.quota.get_quota(vfolder_id) == 10 * 2**30
    await driver.quota.set_quota(vfolder_id, limit_bytes=2**20)
    assert await driver.quota.get_quota(vfolder_id) == 2**20
    # The PUT goes to the quota's id, quoted (ids hold '+' and '=').
    puts = [r for r in fake.requests if r.method == "PUT"]
    assert puts and puts[-1].url.raw_path.decode().startswith(f"{QUOTAS}/AABp")
    assert b"%2B" in puts[-1].url.raw_path and b"%3D" in puts[-1].url.raw_path
    assert json.loads(puts[-1].content) == {"thresholds": {"hard": 2**20}, "enforced": True}

    # Unset (a vfolder with sub-directories: BAI refused it) clears the hard threshold and
    # keeps the accounting quota, so the usage stays fast.
    (driver.vfolder_path(vfolder_id) / "sub" / "deeper").mkdir(parents=True)
    await driver.quota.set_quota(vfolder_id, limit_bytes=None)
    assert await driver.quota.get_quota(vfolder_id) is None
    quota = quota_at(fake, ifs_of(driver, vfolder_id))
    assert quota["enforced"] is False and quota["thresholds"]["hard"] is None
    assert driver.usage is not None
    assert await driver.usage.usage_bytes(vfolder_id) == 0


async def test_a_lost_quota_is_made_again_and_one_made_elsewhere_is_adopted(
    driver: Driver, fake: FakeOneFs
) -> None:
    assert driver.quota is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    fake.quotas.clear()  # an admin deleted it
    await driver.quota.set_quota(vfolder_id, limit_bytes=4096)
    assert quota_at(fake, ifs_of(driver, vfolder_id))["thresholds"]["hard"] == 4096

    # Another node made the quota between our lookup and our POST: 409, then adopted.
    other = uuid.uuid4()
    await driver.create_vfolder(other)
    fake.quotas.clear()
    real_list = fake.handlers["list_quotas"]
    calls = {"n": 0}

    def list_hiding_once(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            fake.requests.append(request)
            # What another node does meanwhile.
            fake.quotas["OTHER"] = {
                "id": "OTHER",
                "path": ifs_of(driver, other),
                "type": "directory",
                "enforced": False,
                "include_snapshots": False,
                "thresholds_on": "fslogicalsize",
                "container": False,
                "thresholds": {},
            }
            return httpx.Response(200, json={"quotas": [], "resume": None, "total": 0})
        return real_list(request)

    fake.replace("list_quotas", list_hiding_once)
    await driver.quota.set_quota(other, limit_bytes=8192)
    assert fake.quotas["OTHER"]["thresholds"]["hard"] == 8192
    assert fake.quotas["OTHER"]["enforced"] is True


async def test_a_vfolder_is_made_while_papi_fails_and_gets_its_quota_later(
    driver: Driver, fake: FakeOneFs
) -> None:
    assert driver.usage is not None
    fake.replace("create_quota", lambda request: error(503, "AEC_UNAVAILABLE", "busy"))
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    assert await driver.vfolder_exists(vfolder_id) and fake.quotas == {}
    fake.replace("create_quota", fake.handlers["create_quota"])
    assert await driver.usage.usage_bytes(vfolder_id) == 0
    assert quota_at(fake, ifs_of(driver, vfolder_id))["enforced"] is False


async def test_an_accounting_quota_adopted_in_a_race_keeps_the_limit_set_meanwhile(
    driver: Driver, fake: FakeOneFs
) -> None:
    assert driver.usage is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    (limited,) = fake.quotas.values()
    limited["thresholds"]["hard"], limited["enforced"] = 4096, True
    hidden = {"once": True}
    real_list = fake.handlers["list_quotas"]

    def list_missing_once(request: httpx.Request) -> httpx.Response:
        if hidden.pop("once", False):  # our lookup ran before the other node's POST
            return httpx.Response(200, json={"quotas": [], "resume": None, "total": 0})
        return real_list(request)

    fake.replace("list_quotas", list_missing_once)
    assert await driver.usage.usage_bytes(vfolder_id) == 0  # POST answered 409: adopted
    assert limited["thresholds"]["hard"] == 4096 and limited["enforced"] is True


async def test_quota_of_a_missing_vfolder(driver: Driver) -> None:
    assert driver.quota is not None
    with pytest.raises(PathNotFound):
        await driver.quota.set_quota(uuid.uuid4(), limit_bytes=1)


# -- usage -------------------------------------------------------------------------------------


async def test_usage_is_the_quotas_fslogical(driver: Driver, fake: FakeOneFs) -> None:
    assert driver.usage is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    (driver.vfolder_path(vfolder_id) / "a.bin").write_bytes(b"x" * 1234)
    assert await driver.usage.usage_bytes(vfolder_id) == 1234
    fake.string_numbers = True  # some PAPI versions send numbers as strings
    assert await driver.usage.usage_bytes(vfolder_id) == 1234
    await driver.quota.set_quota(vfolder_id, limit_bytes=10**12)  # type: ignore[union-attr]
    assert await driver.quota.get_quota(vfolder_id) == 10**12  # type: ignore[union-attr]


async def test_usage_not_ready_is_unavailable_not_zero(driver: Driver, fake: FakeOneFs) -> None:
    assert driver.usage is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    fake.usage_ready = False
    with pytest.raises(BackendUnavailable, match="not ready"):
        await driver.usage.usage_bytes(vfolder_id)


async def test_usage_of_a_vfolder_without_a_quota_makes_one(
    driver: Driver, fake: FakeOneFs
) -> None:
    assert driver.usage is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    fake.quotas.clear()  # a vfolder made before this backend managed quotas
    (driver.vfolder_path(vfolder_id) / "f").write_bytes(b"12345")
    assert await driver.usage.usage_bytes(vfolder_id) == 5
    assert quota_at(fake, ifs_of(driver, vfolder_id))["enforced"] is False


@pytest.mark.parametrize(
    "answer",
    [
        {"quotas": "nope"},
        {"quotas": [{"id": "Q", "path": "%s", "type": "directory", "usage": None}]},
        {
            "quotas": [
                {"id": "Q", "path": "%s", "type": "directory", "usage": {"fslogical": "lots"}}
            ]
        },
        ["not", "an", "object"],
    ],
)
async def test_a_malformed_answer_is_a_clear_api_error(
    driver: Driver, fake: FakeOneFs, answer: Any
) -> None:
    assert driver.usage is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    text = json.dumps(answer).replace("%s", ifs_of(driver, vfolder_id))
    fake.replace("list_quotas", lambda request: httpx.Response(200, text=text))
    with pytest.raises(BackendApiError, match="malformed answer"):
        await driver.usage.usage_bytes(vfolder_id)


async def test_an_answer_that_is_not_json_is_an_api_error(driver: Driver, fake: FakeOneFs) -> None:
    assert driver.management is not None
    fake.replace("identity", lambda request: httpx.Response(200, text="<html>"))
    health = await driver.management.check()
    assert not health.reachable and "not JSON" in (health.detail or "")


# -- snapshots ---------------------------------------------------------------------------------


async def test_snapshot_create_list_browse_delete(driver: Driver, fake: FakeOneFs) -> None:
    snapshots = driver.snapshots
    assert snapshots is not None
    vfolder_id, other = uuid.uuid4(), uuid.uuid4()
    for v in (vfolder_id, other):
        await driver.create_vfolder(v)
    (driver.vfolder_path(vfolder_id) / "keep.txt").write_text("v1")
    info = await snapshots.create_snapshot(vfolder_id, name="s1")
    assert info.name == "s1" and info.created_at > 0
    (made,) = fake.snapshots.values()
    assert made["name"] == f"sp-{vfolder_id.hex}-s1"  # OneFS names are cluster-wide
    assert made["path"] == ifs_of(driver, vfolder_id)
    await snapshots.create_snapshot(other, name="s1")  # the same name on another vfolder
    await snapshots.create_snapshot(vfolder_id, name="s2")

    assert [s.name for s in await snapshots.list_snapshots(vfolder_id)] == ["s1", "s2"]
    assert [s.name for s in await snapshots.list_snapshots(other)] == ["s1"]

    # Browsed through the mount's .snapshot/<name>/<rel>, read-only operations.
    (driver.vfolder_path(vfolder_id) / "keep.txt").write_text("v2")
    files = snapshots.snapshot_files(vfolder_id, "s1")
    entries, more = await files.list_page(vfolder_id, ROOT, after=None, recursive=True, limit=9)
    assert [str(e.path) for e in entries] == ["keep.txt"] and not more
    readable = await files.open_for_read(vfolder_id, parse_relative_path("keep.txt"))
    assert await readable.read(0, 10) == b"v1"
    await readable.close()

    await snapshots.delete_snapshot(vfolder_id, name="s1")
    assert [s.name for s in await snapshots.list_snapshots(vfolder_id)] == ["s2"]
    assert [s.name for s in await snapshots.list_snapshots(other)] == ["s1"]
    with pytest.raises(SnapshotNotFound):
        await snapshots.delete_snapshot(vfolder_id, name="s1")


async def test_snapshot_list_pages_and_string_numbers(driver: Driver, fake: FakeOneFs) -> None:
    assert driver.snapshots is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    for i in range(5):
        await driver.snapshots.create_snapshot(vfolder_id, name=f"n{i}")
    fake.page_size = 2
    fake.string_numbers = True
    listed = await driver.snapshots.list_snapshots(vfolder_id)
    assert sorted(s.name for s in listed) == [f"n{i}" for i in range(5)]
    assert all(s.size_bytes == 0 for s in listed)
    resumed = [r for r in fake.requests if r.url.path == SNAPSHOTS and "resume" in r.url.params]
    assert resumed and all(set(r.url.params) == {"resume"} for r in resumed)


async def test_a_snapshot_of_that_name_on_another_path_is_not_ours(
    driver: Driver, fake: FakeOneFs
) -> None:
    assert driver.snapshots is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    await driver.snapshots.create_snapshot(vfolder_id, name="s1")
    (made,) = fake.snapshots.values()
    made["path"] = "/ifs/elsewhere"
    assert await driver.snapshots.list_snapshots(vfolder_id) == []
    with pytest.raises(SnapshotNotFound):
        await driver.snapshots.delete_snapshot(vfolder_id, name="s1")
    assert len(fake.snapshots) == 1


async def test_bad_snapshot_names_are_refused_before_any_call(
    driver: Driver, fake: FakeOneFs
) -> None:
    assert driver.snapshots is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    before = len(fake.requests)
    for name in ("../x", "", "a/b", ".hidden", "x" * 200):
        with pytest.raises(InvalidSnapshotName):
            await driver.snapshots.create_snapshot(vfolder_id, name=name)
        with pytest.raises(InvalidSnapshotName):
            await driver.snapshots.delete_snapshot(vfolder_id, name=name)
    assert len(fake.requests) == before


async def test_restore_copies_the_snapshot_back_in_place(driver: Driver, fake: FakeOneFs) -> None:
    assert driver.snapshots is not None and driver.quota is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    await driver.quota.set_quota(vfolder_id, limit_bytes=2**30)
    root = driver.vfolder_path(vfolder_id)
    (root / "a.txt").write_text("old a")
    (root / "dir").mkdir()
    (root / "dir" / "b.txt").write_text("old b")
    await driver.snapshots.create_snapshot(vfolder_id, name="before")
    (root / "a.txt").write_text("changed")
    (root / "new.txt").write_text("added later")
    staged = await driver.files.create_staged(vfolder_id)  # an upload in flight survives
    await staged.write([b"upload"])

    await driver.snapshots.restore_snapshot(vfolder_id, name="before")
    names = sorted(p.name for p in root.iterdir() if p.name not in driver.files.reserved_names)
    assert names == ["a.txt", "dir"]
    assert (root / "a.txt").read_text() == "old a"
    assert (root / "dir" / "b.txt").read_text() == "old b"
    assert staged.size == 6
    await staged.discard()
    # The directory (the quota's boundary) stayed: the same quota, the same limit.
    assert await driver.quota.get_quota(vfolder_id) == 2**30
    (trashed,) = await driver.list_trash()
    assert trashed.holds_files and trashed.vfolder_id == vfolder_id
    assert (driver.layout.trash / trashed.name / "new.txt").read_text() == "added later"
    with pytest.raises(SnapshotNotFound):
        await driver.snapshots.restore_snapshot(vfolder_id, name="never")


# -- the REST client: auth, retries, time-outs, TLS, errors ------------------------------------


async def test_basic_auth_on_every_call_and_no_login(driver: Driver, fake: FakeOneFs) -> None:
    assert driver.management is not None
    assert (await driver.management.check()).reachable
    assert fake.logins == 0
    assert all(r.headers["Authorization"].startswith("Basic ") for r in fake.requests)


async def test_wrong_password_is_an_api_error_with_the_vendors_message(
    fake: FakeOneFs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    driver = build(fake)
    assert driver.management is not None
    health = await driver.management.check()
    assert not health.reachable and "Authorization required" in (health.detail or "")
    assert "wrong" not in (health.detail or "")


async def test_session_auth_logs_in_once_and_again_once_on_401(fake: FakeOneFs) -> None:
    fake.session_auth = True
    driver = build(fake, auth="session")
    await driver.initialize()
    assert driver.quota is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    await driver.quota.set_quota(vfolder_id, limit_bytes=100)
    assert fake.logins == 1  # one session for many calls
    fake.expire_sessions()
    assert await driver.quota.get_quota(vfolder_id) == 100
    assert fake.logins == 2  # exactly one re-login
    (login, *_) = [r for r in fake.requests if r.url.path == "/session/1/session"]
    assert json.loads(login.content)["services"] == ["platform", "namespace"]
    last = fake.requests[-1]
    assert last.headers["X-CSRF-Token"] == "csrf-sess2" and last.headers["Referer"] == ENDPOINT


async def test_session_login_refused(fake: FakeOneFs, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.session_auth = True
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    driver = build(fake, auth="session")
    assert driver.management is not None
    health = await driver.management.check()
    assert not health.reachable and "log-in refused (401): Authentication failed" in str(
        health.detail
    )
    assert fake.logins == 0


async def test_a_get_is_retried_on_5xx_and_a_post_is_not(driver: Driver, fake: FakeOneFs) -> None:
    assert driver.usage is not None and driver.snapshots is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    real = fake.handlers["list_quotas"]
    answers = iter([error(503, "AEC_SYSTEM_INTERNAL_ERROR", "busy")])

    def flaky(request: httpx.Request, **kwargs: str) -> httpx.Response:
        return next(answers, None) or real(request)

    fake.replace("list_quotas", flaky)
    assert await driver.usage.usage_bytes(vfolder_id) == 0

    posts = fake.replace(
        "create_snapshot", lambda request: error(500, "AEC_SYSTEM_INTERNAL_ERROR", "snap failed")
    )
    before = posts.call_count
    with pytest.raises(BackendApiError, match="snap failed") as caught:
        await driver.snapshots.create_snapshot(vfolder_id, name="s1")
    assert posts.call_count == before + 1  # never sent twice
    assert caught.value.status == 500 and caught.value.vendor_code == "AEC_SYSTEM_INTERNAL_ERROR"


async def test_a_timeout_is_backend_unavailable(driver: Driver, fake: FakeOneFs) -> None:
    assert driver.management is not None and driver.quota is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)

    def hang(request: httpx.Request, **kwargs: str) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    route = fake.replace("list_quotas", hang)
    before = route.call_count
    with pytest.raises(BackendUnavailable, match="timed out"):
        await driver.quota.get_quota(vfolder_id)
    assert route.call_count == before + 3  # a GET: retried (retries=2)


async def test_a_snapshot_post_that_timed_out_but_was_made_is_adopted(
    driver: Driver, fake: FakeOneFs
) -> None:
    assert driver.snapshots is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    real = fake.handlers["create_snapshot"]

    def made_then_lost(request: httpx.Request) -> httpx.Response:
        real(request)
        raise httpx.ReadTimeout("timed out", request=request)

    route = fake.replace("create_snapshot", made_then_lost)
    info = await driver.snapshots.create_snapshot(vfolder_id, name="s1")
    assert info.name == "s1" and route.call_count == 1 and len(fake.snapshots) == 1


async def test_not_found_keeps_the_vendor_message(driver: Driver) -> None:
    from drivers.dellemc import OneFsQuota

    assert isinstance(driver.quota, OneFsQuota)
    with pytest.raises(BackendObjectNotFound, match="Quota not found") as caught:
        await driver.quota.api.update_hard_threshold("NOPE", hard=1)
    assert caught.value.vendor_code == "AEC_NOT_FOUND"


def test_tls_verified_by_default_and_a_ca_bundle_is_used(fake: FakeOneFs, tmp_path: Path) -> None:
    driver = build(fake)
    from drivers.dellemc import OneFsQuota

    assert isinstance(driver.quota, OneFsQuota)
    assert driver.quota.api.client._settings["verify"] is True
    bundle = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    if not bundle.is_file():
        pytest.skip("no CA bundle on this machine")
    with_ca = build(fake, ca_bundle=str(bundle))
    assert isinstance(with_ca.quota, OneFsQuota)
    assert isinstance(with_ca.quota.api.client._settings["verify"], ssl.SSLContext)
    off = build(fake, verify_tls=False)
    assert isinstance(off.quota, OneFsQuota)
    assert off.quota.api.client._settings["verify"] is False
    with pytest.raises(InvalidDriverOptions, match="ca_bundle"):
        build_driver(
            "dellemc", root=fake.root, options=options(ca_bundle=str(tmp_path / "none.pem"))
        )


async def test_credentials_never_logged(fake: FakeOneFs, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.session_auth = True
    driver = build(fake, auth="session")
    assert driver.management is not None
    await driver.management.check()
    fake.expire_sessions()
    driver.management._last = None  # type: ignore[attr-defined]
    await driver.management.check()
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(driver.quota.api.client.http._auth)  # type: ignore[union-attr]


async def test_a_duplicate_snapshot_name_keeps_the_vendors_message(
    driver: Driver, fake: FakeOneFs
) -> None:
    assert driver.snapshots is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    await driver.snapshots.create_snapshot(vfolder_id, name="s1")
    with pytest.raises(BackendApiError, match="already in use") as caught:
        await driver.snapshots.create_snapshot(vfolder_id, name="s1")
    assert caught.value.status == 409 and len(fake.snapshots) == 1


async def test_restore_needs_the_snapshot_visible_on_the_mount(
    driver: Driver, fake: FakeOneFs
) -> None:
    assert driver.snapshots is not None
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    (driver.vfolder_path(vfolder_id) / "f").write_text("now")
    await driver.snapshots.create_snapshot(vfolder_id, name="s1")
    (made,) = fake.snapshots.values()
    shutil.rmtree(fake.snapshot_dir(made))  # an export that hides .snapshot
    with pytest.raises(BackendUnavailable, match="not visible"):
        await driver.snapshots.restore_snapshot(vfolder_id, name="s1")
    assert (driver.vfolder_path(vfolder_id) / "f").read_text() == "now"
