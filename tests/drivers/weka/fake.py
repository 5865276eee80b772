"""A small stateful fake of the WekaFS REST API v2, served by a respx router.

Shapes, with their origin:
- log-in and refresh envelopes, ``fileSystems`` records, quota records and the "Directory
  has no quota" answer: SDK/doc (``wekarestapi`` models) and BAI;
- the error body ``{"message": …, "data": null}`` for other errors: inferred;
- snapshot records (``uid``, ``name``, ``access_point``, ``creationTime`` in ISO 8601 with
  ``Z``, ``isWritable``, ``filesystem``): inferred from the CLI's JSON output.

Like Weka, a snapshot appears on the mount as ``<mount>/.snapshots/<access point>/``, a copy
of the filesystem's tree when it was taken, and a quota's ``used_bytes`` is what the
directory with that inode holds."""

from __future__ import annotations

import itertools
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import respx

ENDPOINT = "https://weka.test:14000"
FS_UID = "f3c9e1a2-0000-4000-8000-00000000fs01"
USERNAME = "proxy"
PASSWORD = "weka-s3cret-pw"
ORG = "Root"
QUOTA_PATH = r"^/api/v2/fileSystems/(?P<fs>[^/]+)/quota/(?P<inode>\d+)$"


def _error(status: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"message": message, "data": None})


class FakeWeka:
    def __init__(self, mount_point: Path | None = None, *, token_lifetime: int = 300) -> None:
        self.mount_point = mount_point
        self.token_lifetime = token_lifetime
        self.router = respx.Router(base_url=ENDPOINT, assert_all_called=False)
        self.filesystems: list[dict[str, Any]] = [
            {
                "id": "FSId<1>",
                "uid": "ffffffff-0000-4000-8000-0000000other",
                "name": "scratch",
                "group_name": "default",
                "total_budget": 10**12,
                "used_total": 0,
            },
            {
                "id": "FSId<0>",
                "uid": FS_UID,
                "name": "default",
                "group_name": "default",
                "total_budget": 10**13,
                "used_total": 4096,
            },
        ]
        self.quotas: dict[int, dict[str, Any]] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.logins = 0
        self.refreshes = 0
        self.calls: list[tuple[str, str]] = []
        # A quota GET answered as scripted here, by inode (malformed answers, other shapes).
        self.quota_answers: dict[int, httpx.Response] = {}
        self._counter = itertools.count(1)
        self._routes()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.router.handler)

    def expire_tokens(self, *, refresh_too: bool = False) -> None:
        """What the cluster does when a token's time is up (or it restarts)."""
        self.tokens.clear()
        if refresh_too:
            self.refresh_tokens.clear()

    # -- routes -------------------------------------------------------------------------------

    def _routes(self) -> None:
        r = self.router
        r.post("/api/v2/login").mock(side_effect=self._login)
        r.post("/api/v2/login/refresh").mock(side_effect=self._refresh)
        r.get("/api/v2/cluster").mock(side_effect=self._authed(self._cluster))
        r.get("/api/v2/fileSystems").mock(side_effect=self._authed(self._filesystems))
        quota = QUOTA_PATH
        r.get(path__regex=quota).mock(side_effect=self._authed(self._get_quota))
        r.put(path__regex=quota).mock(side_effect=self._authed(self._put_quota))
        r.delete(path__regex=quota).mock(side_effect=self._authed(self._delete_quota))
        r.get("/api/v2/snapshots").mock(side_effect=self._authed(self._list_snapshots))
        r.post("/api/v2/snapshots").mock(side_effect=self._authed(self._create_snapshot))
        r.delete(path__regex=r"^/api/v2/snapshots/(?P<uid>[^/]+)$").mock(
            side_effect=self._authed(self._delete_snapshot)
        )

    def _tokens(self) -> httpx.Response:
        n = next(self._counter)
        access, refresh = f"access-{n}", f"refresh-{n}"
        self.tokens.add(access)
        self.refresh_tokens.add(refresh)
        return httpx.Response(
            200,
            json={
                "data": {
                    "access_token": access,
                    "refresh_token": refresh,
                    "expires_in": self.token_lifetime,
                    "token_type": "Bearer",
                }
            },
        )

    def _login(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(("POST", "/api/v2/login"))
        body = _json(request)
        if body != {"username": USERNAME, "password": PASSWORD, "org": ORG}:
            return _error(401, "Invalid username or password")
        self.logins += 1
        return self._tokens()

    def _refresh(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(("POST", "/api/v2/login/refresh"))
        token = _json(request).get("refresh_token")
        if token not in self.refresh_tokens:
            return _error(401, "Invalid refresh token")
        self.refresh_tokens.discard(token)
        self.refreshes += 1
        return self._tokens()

    def _authed(self, handler: Any) -> Any:
        def wrapped(request: httpx.Request, **kwargs: str) -> httpx.Response:
            self.calls.append((request.method, request.url.path))
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer ") or header[7:] not in self.tokens:
                return _error(401, "Unauthorized: token expired or invalid")
            response: httpx.Response = handler(request, **kwargs)
            return response

        return wrapped

    def _cluster(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"name": "weka-test", "guid": "c0ffee"}})

    def _filesystems(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": self.filesystems})

    def _check_fs(self, fs: str) -> httpx.Response | None:
        if fs not in {f["uid"] for f in self.filesystems}:
            return _error(404, f"Filesystem {fs} not found")
        return None

    def _get_quota(self, request: httpx.Request, fs: str, inode: str) -> httpx.Response:
        if (missing := self._check_fs(fs)) is not None:
            return missing
        if int(inode) in self.quota_answers:
            return self.quota_answers[int(inode)]
        quota = self.quotas.get(int(inode))
        if quota is None:
            # BAI: {"message":"Directory has no quota","data":{}}
            return httpx.Response(400, json={"message": "Directory has no quota", "data": {}})
        record = {**quota, "used_bytes": self._used(int(inode))}
        return httpx.Response(200, json={"data": {f"QuotaId<{inode}>": record}})

    def _put_quota(self, request: httpx.Request, fs: str, inode: str) -> httpx.Response:
        if (missing := self._check_fs(fs)) is not None:
            return missing
        body = _json(request)
        limit = body.get("hard_limit_bytes")
        if not isinstance(limit, int) or limit < 0:
            return _error(400, "hard_limit_bytes must be a non-negative integer")
        record = {
            "inode_id": int(inode),
            "hard_limit_bytes": limit,
            "soft_limit_bytes": body.get("soft_limit_bytes"),
            "grace_seconds": None,
        }
        self.quotas[int(inode)] = record
        return httpx.Response(200, json={"data": {**record, "used_bytes": self._used(int(inode))}})

    def _delete_quota(self, request: httpx.Request, fs: str, inode: str) -> httpx.Response:
        if (missing := self._check_fs(fs)) is not None:
            return missing
        if self.quotas.pop(int(inode), None) is None:
            return httpx.Response(400, json={"message": "Directory has no quota", "data": {}})
        return httpx.Response(200, json={"data": None})

    def _list_snapshots(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": list(self.snapshots.values())})

    def _create_snapshot(self, request: httpx.Request) -> httpx.Response:
        body = _json(request)
        if self._check_fs(str(body.get("fs_uid"))) is not None:
            return _error(400, "Unknown filesystem")
        name, access_point = body.get("name"), body.get("access_point")
        if not isinstance(name, str) or not isinstance(access_point, str):
            return _error(400, "name and access_point are required")
        if any(s["name"] == name for s in self.snapshots.values()):
            return _error(400, f"Snapshot {name} already exists")
        uid = f"snap-{next(self._counter)}"
        record = {
            "uid": uid,
            "id": f"SnapshotId<{len(self.snapshots)}>",
            "name": name,
            "access_point": access_point,
            "filesystem": "default",
            "isWritable": bool(body.get("is_writable")),
            "creationTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        if self.mount_point is not None:
            view = self.mount_point / ".snapshots" / access_point
            shutil.copytree(
                self.mount_point,
                view,
                symlinks=True,
                ignore=lambda d, names: [".snapshots"] if Path(d) == self.mount_point else [],
            )
        self.snapshots[uid] = record
        return httpx.Response(200, json={"data": record})

    def _delete_snapshot(self, request: httpx.Request, uid: str) -> httpx.Response:
        record = self.snapshots.pop(uid, None)
        if record is None:
            return _error(404, f"Snapshot {uid} not found")
        if self.mount_point is not None:
            shutil.rmtree(self.mount_point / ".snapshots" / record["access_point"])
        return httpx.Response(200, json={"data": None})

    def _used(self, inode: int) -> int:
        """Bytes of the files under the directory with that inode (outside snapshots)."""
        if self.mount_point is None:
            return 0
        for top, dirs, _ in os.walk(self.mount_point):
            if Path(top) == self.mount_point and ".snapshots" in dirs:
                dirs.remove(".snapshots")
            if Path(top).lstat().st_ino == inode:
                return sum(
                    (Path(d) / f).lstat().st_size for d, _, files in os.walk(top) for f in files
                )
        return 0


def _json(request: httpx.Request) -> dict[str, Any]:
    import json

    try:
        body = json.loads(request.content or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
