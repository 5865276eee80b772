"""Three proxy nodes share PostgreSQL and Redis; nodes A and C reach Redis through a TCP proxy
that the test cuts, as a network partition would. Permissions fail closed: once a change that
narrows access (revoke, downgrade, deleting the vfolder) has answered 2xx, no node grants the
old access for more than a few seconds, whatever happened between any node and Redis. A change
that cannot be announced is refused (503) and changes nothing.

Seen before the fix: a revoke through a node cut from Redis answered 204 and the two other
nodes went on serving the revoked user from their cache for the rest of its TTL (59 s)."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.server import clean_environment, run_cli, serving
from tests.support.services import (
    REDIS_HOST,
    REDIS_PORT,
    postgres_schema,
    redis_url,
    redis_url_via,
)
from tests.support.tcp_proxy import TcpProxyThread

pytestmark = pytest.mark.slow

KEY = "partition-service-key-0123456789abcdef0123456789"
SERVICE = {"Authorization": f"Bearer {KEY}"}
A_FEW_SECONDS = 3.0


@dataclass
class Cluster:
    a: httpx.Client  # reaches Redis through link_a
    b: httpx.Client  # reaches Redis directly
    c: httpx.Client  # reaches Redis through link_c
    link_a: TcpProxyThread
    link_c: TcpProxyThread
    bob: dict[str, str]

    @property
    def nodes(self) -> dict[str, httpx.Client]:
        return {"a": self.a, "b": self.b, "c": self.c}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    redis = redis_url()
    tmp_path: Path = tmp_path_factory.mktemp("partition")
    with contextlib.ExitStack() as stack:
        database = stack.enter_context(postgres_schema())
        link_a = stack.enter_context(TcpProxyThread(REDIS_HOST, REDIS_PORT))
        link_c = stack.enter_context(TcpProxyThread(REDIS_HOST, REDIS_PORT))
        env = clean_environment(
            STORAGE_ENV="dev",
            STORAGE_DATABASE_URL=database,
            STORAGE_REDIS_URL=redis,
            STORAGE_REDIS_KEY_PREFIX=f"sp-partition-{secrets.token_hex(4)}:",
            STORAGE_SERVICE_KEYS=KEY,
            STORAGE_DATA_DIR=str(tmp_path / "shared"),
        )
        assert run_cli(["migrate"], cwd=tmp_path, env=env).returncode == 0
        bob_token = run_cli(
            ["token", "--user", "bob", "--group", "lab"], cwd=tmp_path, env=env
        ).stdout.strip()
        clients = []
        for link in (link_a, None, link_c):
            node_env = dict(env)
            if link is not None:
                node_env["STORAGE_REDIS_URL"] = redis_url_via(link.url_host)
            node = stack.enter_context(serving(cwd=tmp_path, env=node_env, ready_within=30.0))
            clients.append(stack.enter_context(httpx.Client(base_url=node.base_url, timeout=10)))
        a, b, c = clients
        yield Cluster(a, b, c, link_a=link_a, link_c=link_c, bob=bob_token_headers(bob_token))


def bob_token_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def shared_with_bob(cluster: Cluster, mode: str | None) -> str:
    """A vfolder of alice's shared with bob in ``mode`` (None: a vfolder of bob's group "lab",
    group mode rw), with every node's cache warm with that access."""
    owner = {"owner_id": "alice"} if mode else {"owner_type": "group", "owner_id": "lab"}
    created = cluster.b.post(
        "/v1/vfolders",
        json={"name": f"shared-{secrets.token_hex(4)}", "volume": "local", **owner},
        headers=SERVICE,
    )
    assert created.status_code == 201, created.text
    url = f"/v1/vfolders/{created.json()['id']}"
    assert cluster.b.put(f"{url}/files/f.txt", content=b"data", headers=SERVICE).is_success
    if mode is not None:
        granted = cluster.b.put(f"{url}/grants/user/bob", json={"mode": mode}, headers=SERVICE)
        assert granted.status_code == 201, granted.text
    for name, node in cluster.nodes.items():
        for _ in range(2):
            assert node.get(f"{url}/files/f.txt", headers=cluster.bob).status_code == 200, name
    return url


def bob_reads(cluster: Cluster, url: str) -> Callable[[httpx.Client], bool]:
    return lambda node: node.get(f"{url}/files/f.txt", headers=cluster.bob).status_code == 200


def bob_mounts(cluster: Cluster, url: str) -> Callable[[httpx.Client], bool]:
    """An Agent told where to mount the vfolder for bob."""
    return lambda node: node.get(f"{url}/mount", headers=cluster.bob).status_code == 200


def bob_writes(cluster: Cluster, url: str) -> Callable[[httpx.Client], bool]:
    def writes(node: httpx.Client) -> bool:
        name = f"w-{secrets.token_hex(4)}.txt"
        return node.put(f"{url}/files/{name}", content=b"x", headers=cluster.bob).is_success

    return writes


def granting_nodes(cluster: Cluster, old_access: Callable[[httpx.Client], bool]) -> list[str]:
    return [name for name, node in cluster.nodes.items() if old_access(node)]


def assert_no_node_grants_within(
    cluster: Cluster, old_access: Callable[[httpx.Client], bool], seconds: float
) -> None:
    deadline = time.monotonic() + seconds
    while granting := granting_nodes(cluster, old_access):
        assert time.monotonic() < deadline, f"nodes {granting} still grant after {seconds} s"
        time.sleep(0.2)
    # And it holds: no node brings the old access back from a cache.
    for _ in range(3):
        assert granting_nodes(cluster, old_access) == []


NARROWINGS = {
    # name: (mode granted, the narrowing request, the access it takes away)
    "revoke": ("ro", ("DELETE", "/grants/user/bob", None), bob_reads),
    "downgrade": ("rw", ("PUT", "/grants/user/bob", {"mode": "ro"}), bob_writes),
    "delete-vfolder": ("ro", ("DELETE", "", None), bob_mounts),
    "group-mode": (None, ("PATCH", "", {"group_mode": "ro"}), bob_writes),
}


@pytest.mark.parametrize("narrowing", sorted(NARROWINGS))
def test_narrowing_through_a_node_cut_from_redis_fails_closed(
    cluster: Cluster, narrowing: str
) -> None:
    mode, (method, suffix, body), access = NARROWINGS[narrowing]
    url = shared_with_bob(cluster, mode)
    old_access = access(cluster, url)
    assert granting_nodes(cluster, old_access) == ["a", "b", "c"]

    cluster.link_a.cut()
    try:
        answer = cluster.a.request(method, url + suffix, json=body, headers=SERVICE)
        if answer.is_success:
            assert_no_node_grants_within(cluster, old_access, A_FEW_SECONDS)
            return
        # Refused: nothing changed, on any node.
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"] == "/problems/unavailable"
        assert int(answer.headers["retry-after"]) > 0
        assert granting_nodes(cluster, old_access) == ["a", "b", "c"]
        grants = cluster.b.get(f"{url}/grants", headers=SERVICE).json()["items"]
        assert [(g["grantee_id"], g["mode"]) for g in grants] == ([("bob", mode)] if mode else [])
        assert cluster.b.get(url, headers=SERVICE).json()["status"] == "ready"
    finally:
        cluster.link_a.restore()

    # Once the link is back, the retried change goes through and holds everywhere at once.
    deadline = time.monotonic() + 20
    while not (
        answer := cluster.a.request(method, url + suffix, json=body, headers=SERVICE)
    ).is_success:
        assert answer.status_code == 503 and time.monotonic() < deadline, answer.text
        time.sleep(0.5)
    assert_no_node_grants_within(cluster, old_access, A_FEW_SECONDS)


def test_a_node_cut_from_redis_misses_no_revoke(cluster: Cluster) -> None:
    """Node C cannot hear the revoke announced by node B: it must not go on granting from
    what it cached before the cut, nor after the link comes back."""
    url = shared_with_bob(cluster, "ro")
    old_access = bob_reads(cluster, url)
    cluster.link_c.cut()
    try:
        revoked = cluster.b.delete(f"{url}/grants/user/bob", headers=SERVICE)
        assert revoked.status_code == 204, revoked.text
        assert_no_node_grants_within(cluster, old_access, A_FEW_SECONDS)
    finally:
        cluster.link_c.restore()
    _until_cache_ok(cluster.c)  # node C is back on Redis
    assert_no_node_grants_within(cluster, old_access, 0.0)


def _until_cache_ok(node: httpx.Client, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while node.get("/health/ready").json()["checks"]["cache"]["status"] != "ok":
        assert time.monotonic() < deadline, "the node never got its Redis link back"
        time.sleep(0.1)
