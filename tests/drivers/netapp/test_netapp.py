"""The ``netapp`` driver against a fake ONTAP REST API (respx, tests/drivers/netapp/
fake_ontap.py) serving a real directory that stands for the NFS mount. Each pitfall of
Backend.AI's NetApp code (reference §5) is pinned here: queued/paused jobs taken as done,
the flat job error shape, no job time-out, a purged job, qtrees owned by root, quotas left
off or cached as on, usage reported from nothing."""

from __future__ import annotations

import base64
import logging
import os
import ssl
import uuid
from pathlib import Path
from typing import Any

import anyio
import certifi
import httpx
import pytest
import respx

from drivers.driver import Driver
from drivers.errors import (
    BackendApiError,
    BackendUnavailable,
    InvalidDriverOptions,
    InvalidSnapshotName,
    SnapshotNotFound,
    VFolderDirectoryMissing,
)
from drivers.netapp import NetAppOptions, netapp_driver
from drivers.netapp.client import OntapApi, OntapBasicAuth
from drivers.netapp.parts import QtreeQuota, VolumeSnapshots
from drivers.paths import ROOT, parse_relative_path
from drivers.registry import build_driver
from drivers.rest.client import VendorClient, tls_verification
from drivers.types import CloneProgress
from tests.drivers.netapp.fake_ontap import (
    BASE,
    PASSWORD,
    USER,
    FakeOntap,
    error,
    fake_driver,
    options,
)

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SP_TEST_ONTAP_PASSWORD", PASSWORD)


@pytest.fixture
async def made(tmp_path: Path) -> tuple[Driver, FakeOntap]:
    driver, fake = fake_driver(tmp_path / "volume")
    await driver.initialize()
    return driver, fake


def quota_of(driver: Driver) -> QtreeQuota:
    assert isinstance(driver.quota, QtreeQuota)
    return driver.quota


def snapshots_of(driver: Driver) -> VolumeSnapshots:
    assert isinstance(driver.snapshots, VolumeSnapshots)
    return driver.snapshots


def calls(fake: FakeOntap, method: str, path: str) -> list[tuple[str, str, dict[str, str], Any]]:
    return [c for c in fake.calls if c[0] == method and c[1] == path]


# -- vfolders are qtrees ----------------------------------------------------------------------


async def test_a_vfolder_is_a_qtree_owned_by_the_proxy(made: tuple[Driver, FakeOntap]) -> None:
    driver, fake = made
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    assert driver.vfolder_path(vfolder_id) == driver.root / vfolder_id.hex
    [(_, _, params, body)] = calls(fake, "POST", "/api/storage/qtrees")
    assert params["return_timeout"] == "10"
    assert body == {
        "svm": {"uuid": fake.svm_uuid},
        "volume": {"uuid": fake.volume_uuid},
        "name": vfolder_id.hex,
        "security_style": "unix",
        "unix_permissions": 755,
        # Backend.AI #1983: without them the qtree root belongs to root.
        "user": {"id": str(os.getuid())},
        "group": {"id": str(os.getgid())},
    }
    # A tracking rule (no limit), so that the usage is reported; quotas turned on.
    [rule] = fake.rules.values()
    assert rule == {"type": "tree", "qtree": {"name": vfolder_id.hex}}
    assert fake.quota_enabled
    await driver.create_vfolder(vfolder_id)  # a replayed create
    assert len(calls(fake, "POST", "/api/storage/qtrees")) == 1
    assert await driver.vfolder_ids() == [vfolder_id]


async def test_configured_owner_and_mode_go_to_ontap(tmp_path: Path) -> None:
    driver, fake = fake_driver(
        tmp_path / "volume", qtree_user_id=1001, qtree_group_id=2002, dir_mode="0o770"
    )
    await driver.initialize()
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    [(_, _, _, body)] = calls(fake, "POST", "/api/storage/qtrees")
    assert body["user"] == {"id": "1001"} and body["group"] == {"id": "2002"}
    assert body["unix_permissions"] == 770
    assert driver.vfolder_path(vfolder_id).stat().st_mode & 0o777 == 0o770


async def test_a_new_qtree_is_waited_for_until_it_shows(made: tuple[Driver, FakeOntap]) -> None:
    """NFS attribute caching hides a new qtree for a moment (Backend.AI #2170, #2696): the
    job has ended, the directory shows only later."""
    driver, fake = made
    vfolder_id = uuid.uuid4()
    path = driver.vfolder_path(vfolder_id)
    made_by_ontap = fake.qtree_post
    recorded = anyio.Event()

    def hidden(request: httpx.Request) -> httpx.Response:
        response = made_by_ontap(request)
        job = fake.jobs[response.json()["job"]["uuid"]]
        effect = job.effect
        assert effect is not None

        def recorded_only() -> None:
            effect()
            path.rmdir()  # ONTAP has it; the NFS client does not show it yet
            recorded.set()

        job.effect = recorded_only
        return response

    fake.qtree_post = hidden  # type: ignore[method-assign]
    fake.router.routes.clear()
    fake._routes()

    async def shows_later() -> None:
        await recorded.wait()
        await anyio.sleep(0.3)
        path.mkdir()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(shows_later)
        await driver.create_vfolder(vfolder_id)
    assert path.is_dir()


async def test_a_qtree_that_never_shows_is_an_error(tmp_path: Path) -> None:
    driver, fake = fake_driver(tmp_path / "volume", visibility_timeout_seconds=0.2)
    await driver.initialize()
    fake.qtree_post = lambda request: fake.job(None)  # type: ignore[method-assign]
    fake.router.routes.clear()
    fake._routes()
    with pytest.raises(BackendUnavailable, match="does not show"):
        await driver.create_vfolder(uuid.uuid4())


async def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidDriverOptions, match="no option 'volumes'"):
        build_driver("netapp", root=tmp_path, options={**options(), "volumes": "x"})
    with pytest.raises(InvalidDriverOptions, match="layout"):
        build_driver("netapp", root=tmp_path, options={**options(), "layout": "sharded"})
    built = build_driver("netapp", root=tmp_path, options=options())
    assert isinstance(built, Driver) and built.backend == "netapp"
    await built.aclose()


async def test_a_clone_is_copied_into_the_new_vfolders_qtree(
    made: tuple[Driver, FakeOntap],
) -> None:
    """The service makes the target vfolder (a qtree with its rule), then copies into it: the
    copy must not replace the qtree with a plain directory of qtree 0."""
    driver, fake = made
    source, target = uuid.uuid4(), uuid.uuid4()
    for vfolder_id in (source, target):
        await driver.create_vfolder(vfolder_id)
    src = driver.vfolder_path(source)
    (src / "a.txt").write_text("a")
    (src / "dir").mkdir()
    (src / "dir" / "b.txt").write_text("b")
    (src / "link").symlink_to("/etc/passwd")
    staged = await driver.files.create_staged(source)
    dst = driver.vfolder_path(target)
    (dst / "leftover").write_text("from an earlier attempt")
    progress = CloneProgress()
    await driver.files.receive_copy(src, target, progress, skip=driver.files.reserved_names)
    await staged.discard()
    assert sorted(p.name for p in dst.iterdir()) == ["a.txt", "dir", "link"]
    assert (dst / "dir" / "b.txt").read_text() == "b"
    assert (dst / "link").is_symlink() and progress.bytes_done == 2
    assert dst.stat().st_ino == fake_inode(fake, target)  # the very qtree ONTAP made
    assert len(fake.rules) == 2

    await driver.files.discard_copy(target)
    assert dst.is_dir() and list(dst.iterdir()) == []


def fake_inode(fake: FakeOntap, vfolder_id: uuid.UUID) -> int:
    inode: int = fake.qtrees[vfolder_id.hex]["inode"]
    return inode


async def test_a_deleted_vfolders_qtree_is_renamed_by_the_api_and_purged_by_it(
    made: tuple[Driver, FakeOntap],
) -> None:
    """NFS cannot move a qtree (nor a directory out of one): the trash is an API rename."""
    driver, fake = made
    vfolder_id, other = uuid.uuid4(), uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    await driver.create_vfolder(other)
    await quota_of(driver).set_quota(vfolder_id, limit_bytes=MIB)
    (driver.vfolder_path(vfolder_id) / "f").write_text("x")

    entry = await driver.move_to_trash(vfolder_id)
    assert entry.name.startswith(f"sptrash_{vfolder_id.hex}_")
    [(_, _, _, body)] = [c for c in fake.calls if c[0] == "PATCH" and "qtrees" in c[1]]
    assert body == {"name": entry.name}
    assert (driver.root / entry.name / "f").read_text() == "x"
    assert await driver.list_trash() == [entry]
    assert await driver.vfolder_ids() == [other]

    await driver.restore_from_trash(entry)
    assert await quota_of(driver).get_quota(vfolder_id) == MIB  # the rule came back with it
    entry = await driver.move_to_trash(vfolder_id)
    await driver.create_vfolder(vfolder_id)  # the id made again meanwhile
    with pytest.raises(BackendUnavailable, match="exists"):
        await driver.restore_from_trash(entry)
    await driver.move_to_trash(vfolder_id)

    for trashed in await driver.list_trash():
        await driver.purge(trashed)
        await driver.purge(trashed)  # twice: another node got there first
    assert await driver.list_trash() == []
    assert list(fake.qtrees) == [other.hex]
    assert [r["qtree"]["name"] for r in fake.rules.values()] == [other.hex]
    assert sorted(p.name for p in driver.root.iterdir()) == [".staging", ".trash", other.hex]


async def test_a_directory_deleted_from_a_vfolder_never_leaves_its_qtree(
    made: tuple[Driver, FakeOntap],
) -> None:
    """ONTAP refuses a rename from one qtree into another (the volume's .trash is in qtree
    0): the deleted directory goes out of sight inside the qtree, then is removed."""
    driver, _ = made
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    root = driver.vfolder_path(vfolder_id)
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / "e" / "f").write_bytes(b"12345")
    (root / "d" / "link").symlink_to("/etc")
    freed = await driver.files.delete(vfolder_id, parse_relative_path("d"), recursive=True)
    assert freed.bytes == 5
    assert sorted(p.name for p in root.iterdir()) == [".sp-staging"]
    assert list((root / ".sp-staging").iterdir()) == []
    assert list((driver.root / ".trash").iterdir()) == []
    (root / "plain").write_text("x")
    await driver.files.delete(vfolder_id, parse_relative_path("plain"), recursive=False)
    with pytest.raises(VFolderDirectoryMissing):
        await driver.files.delete(uuid.uuid4(), parse_relative_path("x"), recursive=True)


# -- quota --------------------------------------------------------------------------------------


async def test_quota_set_get_unset(made: tuple[Driver, FakeOntap]) -> None:
    driver, fake = made
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    quota = quota_of(driver)
    assert await quota.get_quota(vfolder_id) is None

    await quota.set_quota(vfolder_id, limit_bytes=10 * MIB)
    assert await quota.get_quota(vfolder_id) == 10 * MIB
    [(_, _, _, body)] = [c for c in fake.calls if c[0] == "PATCH" and "rules" in c[1]]
    assert body == {"space": {"hard_limit": 10 * MIB}}

    await quota.set_quota(vfolder_id, limit_bytes=1000)  # whole KiB, as ONTAP keeps it
    assert await quota.get_quota(vfolder_id) == 1024

    await quota.set_quota(vfolder_id, limit_bytes=None)
    assert await quota.get_quota(vfolder_id) is None
    # The limit went, the tracking rule stayed: the usage is still reported.
    [rule] = fake.rules.values()
    assert "space" not in rule
    assert await quota.usage_bytes(vfolder_id) == 0


async def test_a_limit_is_set_even_where_no_rule_was_made(made: tuple[Driver, FakeOntap]) -> None:
    """A qtree made by hand, or before the volume was the proxy's: the rule is created."""
    driver, fake = made
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    fake.rules.clear()
    await quota_of(driver).set_quota(vfolder_id, limit_bytes=5 * MIB)
    [rule] = fake.rules.values()
    assert rule["space"] == {"hard_limit": 5 * MIB}


async def test_quotas_turned_off_by_an_admin_are_turned_on_again(
    made: tuple[Driver, FakeOntap],
) -> None:
    driver, fake = made
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    assert fake.quota_enabled
    fake.quota_enabled = False  # no per-process "enabled" cache may hide this
    await quota_of(driver).set_quota(vfolder_id, limit_bytes=MIB)
    assert fake.quota_enabled


async def test_quotas_already_being_turned_on_is_not_an_error(
    made: tuple[Driver, FakeOntap],
) -> None:
    driver, fake = made
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    fake.quota_enabled = False
    patch_volume = fake.volume_patch

    def failing(request: httpx.Request, vol: str) -> httpx.Response:
        fake.fail_next = {"error": {"message": "Quotas are already on", "code": "5308507"}}
        return patch_volume(request, vol)

    fake.volume_patch = failing  # type: ignore[method-assign]
    fake.router.routes.clear()
    fake._routes()
    await quota_of(driver).set_quota(vfolder_id, limit_bytes=MIB)


async def test_quota_of_a_missing_vfolder(made: tuple[Driver, FakeOntap]) -> None:
    driver, _ = made
    with pytest.raises(VFolderDirectoryMissing):
        await quota_of(driver).set_quota(uuid.uuid4(), limit_bytes=MIB)
    with pytest.raises(ValueError, match="negative"):
        vfolder_id = uuid.uuid4()
        await driver.create_vfolder(vfolder_id)
        await quota_of(driver).set_quota(vfolder_id, limit_bytes=-1)


# -- usage --------------------------------------------------------------------------------------


async def test_usage_is_the_quota_report(made: tuple[Driver, FakeOntap]) -> None:
    driver, fake = made
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    (driver.vfolder_path(vfolder_id) / "a.bin").write_bytes(b"x" * 12345)
    assert await quota_of(driver).usage_bytes(vfolder_id) == 12345
    [(_, _, params, _)] = calls(fake, "GET", "/api/storage/quota/reports")
    assert params["type"] == "tree" and params["qtree.name"] == vfolder_id.hex


async def test_no_report_is_not_zero(made: tuple[Driver, FakeOntap]) -> None:
    """Quotas off or initializing: ``num_records: 0``; 0 bytes would be a lie."""
    driver, fake = made
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    fake.quota_enabled = False
    with pytest.raises(BackendUnavailable, match="no quota report"):
        await quota_of(driver).usage_bytes(vfolder_id)


def report_router(space: Any) -> respx.Router:
    """A hand-written ONTAP answering one volume and one report record."""
    router = respx.Router(base_url=BASE, assert_all_called=False)
    router.get("/api/storage/volumes").respond(
        json={"records": [{"uuid": "v1", "name": "vol1", "svm": {"uuid": "s1"}}]}
    )
    router.get("/api/storage/quota/reports").respond(
        json={
            "records": [{"type": "tree", "qtree": {"name": uuid.UUID(int=7).hex}, "space": space}]
        }
    )
    return router


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"used": {"total": -5}}, "space.used.total is -5"),
        ({"used": {"total": "12"}}, "space.used.total is str"),
        ({"hard_limit": 10}, "no space.used.total"),
        ("lots", "no space.used.total"),
    ],
)
async def test_a_malformed_report_is_an_api_error(tmp_path: Path, space: Any, message: str) -> None:
    router = report_router(space)
    driver = netapp_driver(
        tmp_path, options=options(), transport=httpx.MockTransport(router.handler)
    )
    vfolder_id = uuid.UUID(int=7)
    driver.vfolder_path(vfolder_id).mkdir(parents=True)
    with pytest.raises(BackendApiError, match=message):
        await quota_of(driver).usage_bytes(vfolder_id)


async def test_a_malformed_volume_lookup_is_an_api_error(tmp_path: Path) -> None:
    router = respx.Router(base_url=BASE, assert_all_called=False)
    router.get("/api/storage/volumes").respond(json={"records": [{"name": "vol1"}]})
    driver = netapp_driver(
        tmp_path, options=options(), transport=httpx.MockTransport(router.handler)
    )
    driver.vfolder_path(uuid.UUID(int=7)).mkdir(parents=True)
    with pytest.raises(BackendApiError, match="malformed answer: no uuid"):
        await quota_of(driver).get_quota(uuid.UUID(int=7))
    router.get("/api/storage/volumes").respond(text="<html>proxy error</html>")
    with pytest.raises(BackendApiError, match="not JSON"):
        await quota_of(driver).get_quota(uuid.UUID(int=7))


async def test_an_unknown_volume_is_said_so(tmp_path: Path) -> None:
    driver, _ = fake_driver(tmp_path / "volume", volume="nope")
    await driver.initialize()
    with pytest.raises(BackendUnavailable, match="no volume 'nope'"):
        await driver.create_vfolder(uuid.uuid4())


# -- snapshots ----------------------------------------------------------------------------------


async def test_snapshot_create_list_browse_restore_delete(made: tuple[Driver, FakeOntap]) -> None:
    driver, fake = made
    snapshots = snapshots_of(driver)
    mine, other = uuid.uuid4(), uuid.uuid4()
    for vfolder_id in (mine, other):
        await driver.create_vfolder(vfolder_id)
    path = driver.vfolder_path(mine)
    (path / "keep.txt").write_text("v1")
    (path / "sub").mkdir()
    (path / "sub" / "inner.txt").write_text("inner")

    info = await snapshots.create_snapshot(mine, name="s1")
    assert info.name == "s1" and info.created_at > 0
    [(_, _, _, body)] = [c for c in fake.calls if c[0] == "POST" and "snapshots" in c[1]]
    assert body["name"] == f"sp-{mine.hex}-s1"
    await snapshots.create_snapshot(other, name="s1")
    fake.add_foreign_snapshot("daily.2026-12-01_0010")
    assert [s.name for s in await snapshots.list_snapshots(mine)] == ["s1"]
    assert [s.name for s in await snapshots.list_snapshots(other)] == ["s1"]

    # Browsed through <root>/.snapshot/<snapshot>/<qtree>, with the safe file operations.
    files = snapshots.snapshot_files(mine, "s1")
    entries, more = await files.list_page(mine, ROOT, after=None, recursive=True, limit=10)
    assert sorted("/".join(e.path.parts) for e in entries) == [
        "keep.txt",
        "sub",
        "sub/inner.txt",
    ]
    assert not more
    readable = await files.open_for_read(mine, parse_relative_path("keep.txt"))
    assert await readable.read(0, 10) == b"v1"
    await readable.close()

    (path / "keep.txt").write_text("v2")
    (path / "new.txt").write_text("new")
    (path / "sub" / "inner.txt").unlink()
    await snapshots.restore_snapshot(mine, name="s1")
    assert (path / "keep.txt").read_text() == "v1"
    assert (path / "sub" / "inner.txt").read_text() == "inner"
    assert not (path / "new.txt").exists()
    assert [p.name for p in (path / ".sp-staging").iterdir()] == []

    await snapshots.delete_snapshot(mine, name="s1")
    assert await snapshots.list_snapshots(mine) == []
    assert [s.name for s in await snapshots.list_snapshots(other)] == ["s1"]
    with pytest.raises(SnapshotNotFound):
        await snapshots.delete_snapshot(mine, name="s1")
    with pytest.raises(SnapshotNotFound):
        await snapshots.restore_snapshot(mine, name="s1")


async def test_snapshot_names_are_checked(made: tuple[Driver, FakeOntap]) -> None:
    driver, _ = made
    snapshots = snapshots_of(driver)
    for bad in ("../x", "a/b", "", "-x", "x" * 200, "*"):
        with pytest.raises(InvalidSnapshotName):
            snapshots.snapshot_files(uuid.uuid4(), bad)
        with pytest.raises(InvalidSnapshotName):
            await snapshots.create_snapshot(uuid.uuid4(), name=bad)
    with pytest.raises(VFolderDirectoryMissing):
        await snapshots.create_snapshot(uuid.uuid4(), name="ok")


async def test_snapshots_are_listed_across_pages(tmp_path: Path) -> None:
    driver, fake = fake_driver(tmp_path / "volume")
    await driver.initialize()
    fake.page_size = 2
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    for name in ("a", "b", "c", "d", "e"):
        await snapshots_of(driver).create_snapshot(vfolder_id, name=name)
    listed = await snapshots_of(driver).list_snapshots(vfolder_id)
    assert [s.name for s in listed] == ["a", "b", "c", "d", "e"]
    pages = [c for c in fake.calls if c[0] == "GET" and c[1].endswith("/snapshots")]
    assert {c[2].get("start") for c in pages} >= {"2", "4"}


# -- jobs ---------------------------------------------------------------------------------------


async def test_queued_and_paused_jobs_are_not_done(made: tuple[Driver, FakeOntap]) -> None:
    """Backend.AI looped only while ``running``: a queued job was taken as done."""
    driver, fake = made
    fake.job_steps = ("queued", "paused", "queued", "running", "success")
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    assert driver.vfolder_path(vfolder_id).is_dir()
    seen = [job.seen for job in fake.jobs.values()]
    assert all(states[-1] == "success" for states in seen)
    assert ["queued", "paused", "queued", "running", "success"] in seen


@pytest.mark.parametrize(
    "failure",
    [
        # Nested, as ONTAP 9.x answers (doc); the flat shape of older releases (BAI/doc).
        {"message": "failed", "code": 1, "error": {"message": "No space left", "code": "917"}},
        {"message": "No space left", "code": 917},
    ],
)
async def test_a_failed_job_keeps_ontaps_message(
    made: tuple[Driver, FakeOntap], failure: dict[str, Any]
) -> None:
    driver, fake = made
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    fake.fail_next = failure
    with pytest.raises(BackendApiError, match="No space left") as raised:
        await snapshots_of(driver).create_snapshot(vfolder_id, name="s1")
    assert raised.value.vendor_code == "917"


async def test_a_purged_job_is_confirmed_by_its_effect(made: tuple[Driver, FakeOntap]) -> None:
    """ONTAP forgets a job minutes after it ends: its GET answers 404."""
    driver, fake = made
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    post = fake.snap_post

    def done_at_once(request: httpx.Request, vol: str) -> httpx.Response:
        response = post(request, vol)
        job = fake.jobs[response.json()["job"]["uuid"]]
        assert job.effect is not None
        job.effect()
        fake.purge_jobs = True
        return response

    fake.snap_post = done_at_once  # type: ignore[method-assign]
    fake.router.routes.clear()
    fake._routes()
    info = await snapshots_of(driver).create_snapshot(vfolder_id, name="s1")
    assert info.name == "s1"


async def test_a_purged_job_without_its_effect_is_an_unknown_outcome(
    made: tuple[Driver, FakeOntap],
) -> None:
    driver, fake = made
    vfolder_id = uuid.uuid4()
    await driver.create_vfolder(vfolder_id)
    fake.purge_jobs = True
    with pytest.raises(BackendUnavailable, match="outcome is unknown"):
        await snapshots_of(driver).create_snapshot(vfolder_id, name="s1")


async def test_a_job_that_never_ends_times_out(tmp_path: Path) -> None:
    driver, fake = fake_driver(tmp_path / "volume", job_timeout_seconds=0.3)
    await driver.initialize()
    fake.job_steps = ("running",)
    with pytest.raises(BackendUnavailable, match=r"has not finished after 0\.3 s"):
        await driver.create_vfolder(uuid.uuid4())


async def test_an_unknown_job_state_is_an_api_error(tmp_path: Path) -> None:
    driver, fake = fake_driver(tmp_path / "volume")
    await driver.initialize()
    fake.job_steps = ("exploded",)
    with pytest.raises(BackendApiError, match="unknown job state 'exploded'"):
        await driver.create_vfolder(uuid.uuid4())


async def test_a_change_done_within_return_timeout_is_not_polled(tmp_path: Path) -> None:
    router = respx.Router(base_url=BASE, assert_all_called=False)
    router.post("/api/storage/quota/rules").respond(201, json={"num_records": 1})
    jobs = router.get(url__regex=r".*/api/cluster/jobs/.*").respond(500)
    client = VendorClient(
        vendor="ONTAP",
        options=NetAppOptions.model_validate(options()),
        transport=httpx.MockTransport(router.handler),
    )
    api = OntapApi(client, job_timeout_seconds=5, return_timeout_seconds=7)
    await api.run("POST", "/api/storage/quota/rules", json={}, what="x")
    assert not jobs.called
    await client.aclose()


# -- transport: auth, retries, time-outs, TLS, secrets --------------------------------------


async def test_every_call_carries_basic_auth(made: tuple[Driver, FakeOntap]) -> None:
    driver, fake = made
    await driver.create_vfolder(uuid.uuid4())
    assert fake.calls  # the fake refuses any call without the right header
    expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    headers = {call.request.headers["Authorization"] for call in fake.router.calls}
    assert headers == {f"Basic {expected}"}


async def test_a_wrong_password_is_one_401_not_a_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    driver, fake = fake_driver(tmp_path / "volume")
    fake.password = "another"
    await driver.initialize()
    assert driver.management is not None
    health = await driver.management.check()
    assert not health.reachable and health.detail is not None
    assert "401" in health.detail and "not authorized" in health.detail
    assert len(fake.calls) == 1
    with pytest.raises(BackendApiError) as raised:
        await driver.create_vfolder(uuid.uuid4())
    assert raised.value.status == 401
    for text in (str(raised.value), health.detail, caplog.text, repr(driver.management)):
        assert PASSWORD not in text


async def test_a_rotated_password_file_is_read_again_once_on_401(tmp_path: Path) -> None:
    secret = tmp_path / "ontap-password"
    secret.write_text(PASSWORD + "\n")
    fake = FakeOntap((tmp_path / "volume").resolve())
    opts = {**options(), "password_env": None, "password_file": str(secret)}
    driver = netapp_driver(tmp_path / "volume", options=opts, transport=fake.transport)
    assert driver.management is not None
    assert (await driver.management.check()).reachable

    fake.password = "rotated-Pa55"
    secret.write_text("rotated-Pa55\n")
    client = driver.management.client  # type: ignore[attr-defined]
    auth = client._settings["auth"]
    assert isinstance(auth, OntapBasicAuth)
    await client.json("GET", "/api/cluster")
    assert auth.rereads == 1
    new = "Basic " + base64.b64encode(f"{USER}:rotated-Pa55".encode()).decode()
    await client.json("GET", "/api/cluster")
    assert auth.rereads == 1  # the new password is kept
    statuses = [call.response.status_code for call in fake.router.calls]
    # The check, the call answered 401, its one re-send, the next call.
    assert statuses == [200, 401, 200, 200]
    assert fake.router.calls.last.request.headers["Authorization"] == new
    assert "rotated" not in repr(auth) and PASSWORD not in repr(auth)


async def test_a_get_is_retried_on_5xx_a_post_is_not(tmp_path: Path) -> None:
    router = respx.Router(base_url=BASE, assert_all_called=False)
    cluster = router.get("/api/cluster").mock(
        side_effect=[error(503, "busy", "262160"), httpx.Response(200, json={"name": "c"})]
    )
    posted = router.post("/api/storage/qtrees").mock(return_value=error(500, "boom", "1"))
    client = VendorClient(
        vendor="ONTAP",
        options=NetAppOptions.model_validate(options()),
        backoff_seconds=0.01,
        transport=httpx.MockTransport(router.handler),
    )
    api = OntapApi(client, job_timeout_seconds=5, return_timeout_seconds=7)
    assert (await api.get("/api/cluster"))["name"] == "c"
    assert cluster.call_count == 2
    with pytest.raises(BackendApiError, match="boom"):
        await api.run("POST", "/api/storage/qtrees", json={"name": "q"}, what="creating")
    assert posted.call_count == 1
    await client.aclose()


async def test_a_timeout_is_backend_unavailable(tmp_path: Path) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    driver = netapp_driver(
        tmp_path, options=options(retries=1), transport=httpx.MockTransport(slow)
    )
    assert driver.management is not None
    health = await driver.management.check()
    assert not health.reachable and "timed out" in (health.detail or "")
    driver.vfolder_path(uuid.UUID(int=1)).mkdir(parents=True)
    with pytest.raises(BackendUnavailable, match="timed out"):
        await quota_of(driver).usage_bytes(uuid.UUID(int=1))


def test_tls_is_verified_by_default_and_a_ca_bundle_is_used() -> None:
    assert tls_verification(NetAppOptions.model_validate(options())) is True
    with_bundle = NetAppOptions.model_validate(options(ca_bundle=certifi.where()))
    context = tls_verification(with_bundle)
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert tls_verification(NetAppOptions.model_validate(options(verify_tls=False))) is False


def test_tls_settings_reach_the_client(tmp_path: Path) -> None:
    driver = netapp_driver(tmp_path, options=options(ca_bundle=certifi.where()))
    assert driver.management is not None
    settings = driver.management.client._settings  # type: ignore[attr-defined]
    assert isinstance(settings["verify"], ssl.SSLContext)
    assert settings["timeout"] == httpx.Timeout(30.0)


def test_the_password_comes_from_env_or_file_never_the_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidDriverOptions, match="no option 'password'"):
        build_driver("netapp", root=tmp_path, options={**options(), "password": PASSWORD})
    monkeypatch.delenv("SP_TEST_ONTAP_PASSWORD")
    with pytest.raises(InvalidDriverOptions, match="SP_TEST_ONTAP_PASSWORD is not set"):
        build_driver("netapp", root=tmp_path, options=options())
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD)
    opts = {**options(), "password_env": None, "password_file": str(secret)}
    built = build_driver("netapp", root=tmp_path, options=opts)
    assert isinstance(built, Driver) and built.management is not None
    shown = repr(NetAppOptions.model_validate(opts)) + repr(built.management.client.__dict__)  # type: ignore[attr-defined]
    assert PASSWORD not in shown


async def test_health_is_a_cheap_authenticated_get(made: tuple[Driver, FakeOntap]) -> None:
    driver, fake = made
    assert driver.management is not None
    health = await driver.management.check()
    assert health.reachable
    assert fake.calls == [("GET", "/api/cluster", {"fields": "version"}, None)]
    await driver.management.check()  # reused for health_cache_seconds
    assert len(fake.calls) == 1
    await driver.aclose()
