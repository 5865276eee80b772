"""Nothing outside the vfolder is read, listed, written, moved or deleted, whatever the path;
every refusal is a 4xx problem, never a 500."""

from __future__ import annotations

import http.client
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.files.conftest import ALICE, VFolderHandle
from tests.support.observed import assert_documented, observing
from tests.support.server import clean_environment, run_cli, serving
from tests.support.sqlite_template import migrated_sqlite


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Paths and bytes on disk, not metadata:
    one database is enough (the metadata tests run on both)."""
    return migrated_sqlite(tmp_path / "meta.sqlite3")


SECRET = b"outside the vfolder"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the volume, with a file nobody may touch through the API."""
    place = tmp_path / "outside"
    place.mkdir()
    (place / "secret").write_bytes(SECRET)
    return place


def assert_outside_untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == SECRET


def assert_refused(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if statuses:
        assert response.status_code in statuses, response.text
    assert response.headers["content-type"] == "application/problem+json", response.text
    body: dict[str, Any] = response.json()
    assert body["type"].startswith("/problems/")
    return body


# Paths as a client would put them in a URL (already percent-encoded where it matters).
URL_ATTACKS = [
    "%2e%2e/outside/secret",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "a/%2e%2e/%2e%2e/x",
    "%2Fetc%2Fpasswd",
    "..%5c..%5cetc",
    "a%00b",
    "a%0Ab",
    "%ff%fe",
    "x" * 256,
    "/".join(["d"] * 2100),
]


@pytest.mark.parametrize("attack", URL_ATTACKS)
async def test_url_path_attacks(vfolder: VFolderHandle, attack: str, outside: Path) -> None:
    c = vfolder.client
    for method in ("GET", "HEAD", "PUT"):
        response = await c.request(
            method, vfolder.url(f"files/{attack}"), content=b"evil", headers=ALICE
        )
        assert 400 <= response.status_code < 500, (method, attack, response.status_code)
        if method != "HEAD":
            assert_refused(response)
    assert_outside_untouched(outside)


QUERY_ATTACKS = ["../", "a/../../b", "/etc", "a\\b", "a\x00b", "a\x7fb", "x" * 256]


@pytest.mark.parametrize("attack", QUERY_ATTACKS)
async def test_query_and_body_attacks(vfolder: VFolderHandle, attack: str, outside: Path) -> None:
    c = vfolder.client
    assert_refused(await c.get(vfolder.url("list"), params={"path": attack}, headers=ALICE), 400)
    assert_refused(await c.get(vfolder.url("stat"), params={"path": attack}, headers=ALICE), 400)
    assert_refused(await c.post(vfolder.url("mkdir"), json={"path": attack}, headers=ALICE), 400)
    for body in ({"source": attack, "destination": "x"}, {"source": "x", "destination": attack}):
        assert_refused(await c.post(vfolder.url("move"), json=body, headers=ALICE), 400)
    deleted = await c.post(vfolder.url("delete"), json={"paths": [attack]}, headers=ALICE)
    assert deleted.status_code == 200
    assert deleted.json()["results"][0]["problem"]["status"] == 400
    assert_outside_untouched(outside)


async def test_invalid_utf8_in_query_is_taken_as_raw_bytes(vfolder: VFolderHandle) -> None:
    """Not decoded leniently (two names would become one): the exact bytes are looked up,
    so a name made through a mount can be read (see test_hostile_names)."""
    response = await vfolder.client.get(vfolder.url("list") + "?path=%ff", headers=ALICE)
    assert assert_refused(response, 404)["type"] == "/problems/path-not-found"


async def test_lone_surrogate_in_json_is_refused(vfolder: VFolderHandle) -> None:
    response = await vfolder.client.post(
        vfolder.url("mkdir"),
        content=b'{"path": "a\\ud800b"}',
        headers={**ALICE, "content-type": "application/json"},
    )
    assert_refused(response, 400, 422)


async def test_symlinked_parent_is_never_followed(vfolder: VFolderHandle, outside: Path) -> None:
    (vfolder.root / "escape").symlink_to(outside)
    c = vfolder.client
    checks = [
        await c.get(vfolder.url("files/escape/secret"), headers=ALICE),
        await c.put(vfolder.url("files/escape/new"), content=b"x", headers=ALICE),
        await c.put(
            vfolder.url("files/escape/deep/new"),
            params={"parents": "true"},
            content=b"x",
            headers=ALICE,
        ),
        await c.get(vfolder.url("list"), params={"path": "escape"}, headers=ALICE),
        await c.get(vfolder.url("list"), params={"path": "escape/"}, headers=ALICE),
        await c.get(vfolder.url("stat"), params={"path": "escape/secret"}, headers=ALICE),
        await c.post(vfolder.url("mkdir"), json={"path": "escape/x"}, headers=ALICE),
        await c.post(
            vfolder.url("mkdir"), json={"path": "escape/x/y", "parents": True}, headers=ALICE
        ),
        await c.post(
            vfolder.url("move"),
            json={"source": "escape/secret", "destination": "mine"},
            headers=ALICE,
        ),
    ]
    for response in checks:
        body = assert_refused(response, 400)
        assert body["type"] == "/problems/symlink-not-followed", body
    await c.put(vfolder.url("files/mine"), content=b"x", headers=ALICE)
    assert_refused(
        await c.post(
            vfolder.url("move"),
            json={"source": "mine", "destination": "escape/mine"},
            headers=ALICE,
        ),
        400,
    )
    deleted = await c.post(
        vfolder.url("delete"), json={"paths": ["escape/secret"], "recursive": True}, headers=ALICE
    )
    assert deleted.json()["results"][0]["problem"]["type"] == "/problems/symlink-not-followed"
    # The link itself is the vfolder's own entry: listed as a link, deletable as a link.
    listing = (await c.get(vfolder.url("list"), headers=ALICE)).json()["items"]
    assert {e["name"]: e["type"] for e in listing if e["name"] == "escape"} == {"escape": "symlink"}
    removed = await c.post(
        vfolder.url("delete"), json={"paths": ["escape"], "recursive": True}, headers=ALICE
    )
    assert removed.json()["results"][0]["status"] == "deleted"
    assert_outside_untouched(outside)


async def test_symlinked_file_is_never_followed(vfolder: VFolderHandle, outside: Path) -> None:
    (vfolder.root / "link").symlink_to(outside / "secret")
    c = vfolder.client
    body = assert_refused(await c.get(vfolder.url("files/link"), headers=ALICE), 400)
    assert body["type"] == "/problems/symlink-not-followed"
    stat = (await c.get(vfolder.url("stat"), params={"path": "link"}, headers=ALICE)).json()
    assert stat["type"] == "symlink" and stat["symlink_target"] == str(outside / "secret")
    # Writing to the link's name replaces the link, never the file it points to.
    assert (await c.put(vfolder.url("files/link"), content=b"mine", headers=ALICE)).is_success
    assert not (vfolder.root / "link").is_symlink()
    assert (vfolder.root / "link").read_bytes() == b"mine"
    assert_outside_untouched(outside)


async def test_fifo_and_directories_are_not_downloads(vfolder: VFolderHandle) -> None:
    import os

    os.mkfifo(vfolder.root / "pipe")
    (vfolder.root / "dir").mkdir()
    for name in ("pipe", "dir"):
        response = await vfolder.client.get(vfolder.url(f"files/{name}"), headers=ALICE)
        assert assert_refused(response, 409)["type"] == "/problems/not-a-regular-file"
    root = await vfolder.client.put(vfolder.url("files/"), content=b"x", headers=ALICE)
    assert_refused(root)


async def test_racing_symlink_swaps_never_escape(vfolder: VFolderHandle, outside: Path) -> None:
    """A container swaps a directory for a symlink to outside, as fast as it can, while the
    proxy writes and reads through that directory."""
    real = vfolder.root / "d"
    real.mkdir()
    (real / "secret").write_bytes(b"inside")
    stop = threading.Event()

    def swapper() -> None:
        link = vfolder.root / "d-link"
        parked = vfolder.root / "d-real"
        while not stop.is_set():
            link.symlink_to(outside)
            real.rename(parked)
            link.rename(real)  # "d" is now a symlink to outside
            real.rename(link)
            parked.rename(real)  # and a directory again
            link.unlink()

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    try:
        for i in range(150):
            put = await vfolder.client.put(
                vfolder.url(f"files/d/new-{i}"), content=b"x", headers=ALICE
            )
            got = await vfolder.client.get(vfolder.url("files/d/secret"), headers=ALICE)
            listed = await vfolder.client.get(
                vfolder.url("list"), params={"path": "d", "limit": 1000}, headers=ALICE
            )
            for response in (put, got, listed):
                assert response.status_code < 500, response.text
            if got.status_code == 200:
                assert got.content == b"inside"
            if listed.status_code == 200:
                assert "secret" in {e["name"] for e in listed.json()["items"]}
                assert all(e["path"].startswith("d/") for e in listed.json()["items"])
    finally:
        stop.set()
        thread.join()
    assert_outside_untouched(outside)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=st.text(alphabet=st.sampled_from(list("./\\\x00ab%é\n")), max_size=30))
def test_generated_paths_never_leave_the_root(text: str) -> None:
    """Property of the containment helper: whatever it accepts stays below the root."""
    from drivers.errors import UnsafePath
    from drivers.paths import parse_relative_path

    try:
        rel = parse_relative_path(text)
    except UnsafePath:
        return
    for part in rel.parts:
        assert part not in ("", ".", "..")
        assert "/" not in part and "\\" not in part and "\x00" not in part
    root = Path("/vf")
    assert (root / str(rel)).resolve().is_relative_to(root) if rel.parts else True


@dataclass
class RawServer:
    host: str
    port: int
    files_prefix: str
    vfolder_url: str
    token: str
    outside: Path


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawServer]:
    """A real server, to send request targets no HTTP library would (literal ``..``), with
    a symlink inside its vfolder pointing at a directory outside."""
    cwd = tmp_path_factory.mktemp("raw")
    outside_dir = cwd / "outside"
    outside_dir.mkdir()
    (outside_dir / "secret").write_bytes(SECRET)
    env = clean_environment()
    with serving(cwd=cwd, env=env) as server:
        token = run_cli(["token", "--user", "mallory"], cwd=cwd, env=env).stdout.strip()
        created = httpx.post(
            f"{server.base_url}/v1/vfolders",
            json={"name": "raw", "volume": "local"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        hex_id = uuid.UUID(created["id"]).hex
        root = cwd / "var" / "volumes" / "local" / hex_id[:2] / hex_id[2:4] / hex_id
        (root / "escape").symlink_to(outside_dir)
        (root / "inside").mkdir()
        host, port = server.base_url.removeprefix("http://").split(":")
        yield RawServer(
            host=host,
            port=int(port),
            files_prefix=f"/v1/vfolders/{created['id']}/files/",
            vfolder_url=f"{server.base_url}/v1/vfolders/{created['id']}",
            token=token,
            outside=outside_dir,
        )


path_pieces = st.sampled_from(
    [
        "..",
        ".",
        "escape",
        "inside",
        "secret",
        "%2e%2e",
        "%2F",
        "%5c",
        "%00",
        "",
        "x",
        "%ff",
        "%C3%A9",
    ]
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(path_pieces, min_size=1, max_size=6), method=st.sampled_from(["GET", "PUT"]))
def test_generated_paths_over_the_wire(
    real_server: RawServer, pieces: list[str], method: str
) -> None:
    target = real_server.files_prefix + "/".join(pieces)
    connection = http.client.HTTPConnection(real_server.host, real_server.port, timeout=10)
    try:
        connection.request(
            method,
            target,
            body=b"evil" if method == "PUT" else None,
            headers={"Authorization": f"Bearer {real_server.token}"},
        )
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status < 500, (target, response.status, body)
    if response.status >= 400:
        assert response.getheader("content-type") == "application/problem+json"
    if method == "GET" and response.status == 200:
        assert body != SECRET
    listed = httpx.get(
        f"{real_server.vfolder_url}/list",
        params={"path": "/".join(p for p in pieces if "%" not in p)},
        headers={"Authorization": f"Bearer {real_server.token}"},
    )
    assert listed.status_code < 500
    assert_outside_untouched(real_server.outside)


@pytest.mark.slow
@pytest.mark.parametrize(
    "suffix",
    [
        "../../../../etc/passwd",
        "a/../../x",
        "..",
        "/etc/passwd",
        "//etc/passwd",
        "a/./../../../x",
    ],
)
def test_literal_dot_dot_over_the_wire(real_server: RawServer, suffix: str) -> None:
    prefix = real_server.files_prefix
    connection = http.client.HTTPConnection(real_server.host, real_server.port, timeout=10)
    try:
        for method in ("GET", "PUT"):
            connection.request(method, prefix + suffix, body=b"x" if method == "PUT" else None)
            response = connection.getresponse()
            body = response.read()
            assert 400 <= response.status < 500, (method, suffix, response.status, body)
    finally:
        connection.close()


@pytest.fixture(scope="module", autouse=True)
def every_status_seen_here_is_documented() -> Iterator[None]:
    """Whatever these attacks provoke, the spec must have promised it, as problem+json."""
    with observing() as seen:
        yield
    assert_documented(seen)
