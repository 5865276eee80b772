"""A small stateful fake of the ONTAP REST API (respx), over a real directory standing for
the NFS mount of the volume: qtrees are directories at its root, snapshots copies under its
``.snapshot``, quota reports the bytes really there.

Shapes follow the ONTAP REST documentation and the netapp-ontap SDK models:
- volumes, qtrees, quota rules and reports, snapshots, jobs: SDK/doc (field names exact,
  values illustrative);
- error body ``{"error": {"message", "code", "target"}}``: doc; the flat job failure shape
  (``message``/``code`` at the top level, older releases): BAI/doc;
- pagination with ``_links.next.href``: doc.
Every change answers 202 with a job, and takes effect only when the job is seen to reach
``success``: a driver that took ``queued`` or ``paused`` for done would find nothing."""

from __future__ import annotations

import base64
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import respx

from drivers.driver import Driver
from drivers.netapp import netapp_driver

BASE = "https://ontap.example"
USER = "sp-admin"
PASSWORD = "s3cret-Pa55"
VOLUME = "vol1"
DEFAULT_STEPS = ("running", "success")


@dataclass
class Job:
    uuid: str
    states: list[str]
    effect: Callable[[], None] | None
    failure: dict[str, Any] | None = None
    seen: list[str] = field(default_factory=list)


class FakeOntap:
    def __init__(self, root: Path, *, password: str = PASSWORD, page_size: int = 0) -> None:
        self.root = root
        self.password = password
        self.page_size = page_size  # 0: one page
        self.volume_uuid = "8a5c9938-a872-11ed-8519-d039ea42b802"
        self.svm_uuid = "b68f961b-4cee-11e9-930a-005056a7f717"
        self.quota_enabled = False
        self.qtrees: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, Job] = {}
        self.job_steps: tuple[str, ...] = DEFAULT_STEPS
        self.fail_next: dict[str, Any] | None = None  # the next job's failure record
        self.purge_jobs = False  # job GETs answer 404
        self.calls: list[tuple[str, str, dict[str, str], Any]] = []
        self.router = respx.Router(base_url=BASE, assert_all_called=False)
        self._routes()

    # -- plumbing ------------------------------------------------------------------------

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.router.handler)

    def _routes(self) -> None:
        r = self.router
        r.route(method="GET", path="/api/cluster").mock(side_effect=self._guard(self.cluster))
        r.route(method="GET", path="/api/storage/volumes").mock(
            side_effect=self._guard(self.volumes)
        )
        r.route(method="GET", path__regex=r"^/api/storage/volumes/(?P<vol>[^/]+)$").mock(
            side_effect=self._guard(self.volume_get)
        )
        r.route(method="PATCH", path__regex=r"^/api/storage/volumes/(?P<vol>[^/]+)$").mock(
            side_effect=self._guard(self.volume_patch)
        )
        r.route(method="GET", path="/api/storage/qtrees").mock(
            side_effect=self._guard(self.qtree_list)
        )
        r.route(method="POST", path="/api/storage/qtrees").mock(
            side_effect=self._guard(self.qtree_post)
        )
        qtree = r"^/api/storage/qtrees/[^/]+/(?P<qtree_id>\d+)$"
        r.route(method="PATCH", path__regex=qtree).mock(side_effect=self._guard(self.qtree_patch))
        r.route(method="DELETE", path__regex=qtree).mock(side_effect=self._guard(self.qtree_delete))
        r.route(method="GET", path="/api/storage/quota/rules").mock(
            side_effect=self._guard(self.rule_list)
        )
        r.route(method="POST", path="/api/storage/quota/rules").mock(
            side_effect=self._guard(self.rule_post)
        )
        rule = r"^/api/storage/quota/rules/(?P<rule>[^/]+)$"
        r.route(method="PATCH", path__regex=rule).mock(side_effect=self._guard(self.rule_patch))
        r.route(method="DELETE", path__regex=rule).mock(side_effect=self._guard(self.rule_delete))
        r.route(method="GET", path="/api/storage/quota/reports").mock(
            side_effect=self._guard(self.reports)
        )
        snaps = r"^/api/storage/volumes/(?P<vol>[^/]+)/snapshots$"
        r.route(method="GET", path__regex=snaps).mock(side_effect=self._guard(self.snap_list))
        r.route(method="POST", path__regex=snaps).mock(side_effect=self._guard(self.snap_post))
        r.route(
            method="DELETE", path__regex=r"^/api/storage/volumes/[^/]+/snapshots/(?P<snap>[^/]+)$"
        ).mock(side_effect=self._guard(self.snap_delete))
        r.route(method="GET", path__regex=r"^/api/cluster/jobs/(?P<job>[^/]+)$").mock(
            side_effect=self._guard(self.job_get)
        )

    def _guard(self, handler: Callable[..., httpx.Response]) -> Callable[..., httpx.Response]:
        def guarded(request: httpx.Request, **kwargs: str) -> httpx.Response:
            body = json.loads(request.content) if request.content else None
            self.calls.append((request.method, request.url.path, dict(request.url.params), body))
            expected = "Basic " + base64.b64encode(f"{USER}:{self.password}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                return error(401, "User is not authorized.", "6")
            return handler(request, **kwargs)

        return guarded

    def job(self, effect: Callable[[], None] | None) -> httpx.Response:
        job_uuid = str(uuid.uuid4())
        self.jobs[job_uuid] = Job(job_uuid, list(self.job_steps), effect, self.fail_next)
        self.fail_next = None
        return httpx.Response(
            202,
            json={
                "job": {
                    "uuid": job_uuid,
                    "_links": {"self": {"href": f"/api/cluster/jobs/{job_uuid}"}},
                }
            },
        )

    def job_get(self, request: httpx.Request, job: str) -> httpx.Response:
        found = self.jobs.get(job)
        if found is None or self.purge_jobs:
            return error(404, "entry doesn't exist", "4")
        state = found.states.pop(0) if len(found.states) > 1 else found.states[0]
        found.seen.append(state)
        record: dict[str, Any] = {"uuid": job, "state": state, "description": "fake"}
        if state == "success":
            if found.failure is not None:
                record = {"uuid": job, "state": "failure", **found.failure}
            elif found.effect is not None:
                found.effect()
                found.effect = None
            record.setdefault("message", "success")
            record.setdefault("code", 0)
        return httpx.Response(200, json=record)

    def page(self, request: httpx.Request, records: list[dict[str, Any]]) -> httpx.Response:
        start = int(request.url.params.get("start", "0"))
        size = self.page_size or len(records) or 1
        chunk = records[start : start + size]
        body: dict[str, Any] = {"records": chunk, "num_records": len(chunk)}
        if start + size < len(records):
            params = dict(request.url.params)
            params["start"] = str(start + size)
            body["_links"] = {
                "next": {"href": str(request.url.copy_with(params=params).raw_path.decode())}
            }
        return httpx.Response(200, json=body)

    # -- resources -----------------------------------------------------------------------

    def cluster(self, request: httpx.Request) -> httpx.Response:
        version = {"full": "NetApp Release 9.14.1", "generation": 9, "major": 14, "minor": 1}
        return httpx.Response(200, json={"name": "cluster1", "version": version})

    def volumes(self, request: httpx.Request) -> httpx.Response:
        records = []
        if request.url.params.get("name") == VOLUME:
            records.append(
                {
                    "uuid": self.volume_uuid,
                    "name": VOLUME,
                    "nas": {"path": "/vol1"},
                    "svm": {"uuid": self.svm_uuid, "name": "svm1"},
                }
            )
        return self.page(request, records)

    def volume_get(self, request: httpx.Request, vol: str) -> httpx.Response:
        if vol != self.volume_uuid:
            return error(404, "volume not found", "917927")
        quota = {"enabled": self.quota_enabled, "state": "on" if self.quota_enabled else "off"}
        return httpx.Response(200, json={"uuid": vol, "name": VOLUME, "quota": quota})

    def volume_patch(self, request: httpx.Request, vol: str) -> httpx.Response:
        body = json.loads(request.content)

        def effect() -> None:
            self.quota_enabled = bool(body["quota"]["enabled"])

        return self.job(effect)

    def qtree_list(self, request: httpx.Request) -> httpx.Response:
        pattern = request.url.params.get("name", "*")
        records = [
            {"id": q["id"], "name": n, "volume": {"uuid": self.volume_uuid}}
            for n, q in self.qtrees.items()
            if matches(n, pattern)
        ]
        return self.page(request, records)

    def qtree_by_id(self, qtree_id: str) -> str | None:
        return next((n for n, q in self.qtrees.items() if str(q["id"]) == qtree_id), None)

    def qtree_patch(self, request: httpx.Request, qtree_id: str) -> httpx.Response:
        old = self.qtree_by_id(qtree_id)
        if old is None:
            return error(404, "entry doesn't exist", "4")
        new = json.loads(request.content)["name"]

        def effect() -> None:
            # A rename keeps the qtree's id and moves its rules with it (inferred).
            self.qtrees[new] = self.qtrees.pop(old)
            (self.root / old).rename(self.root / new)
            for rule in self.rules.values():
                if rule["qtree"]["name"] == old:
                    rule["qtree"]["name"] = new

        return self.job(effect)

    def qtree_delete(self, request: httpx.Request, qtree_id: str) -> httpx.Response:
        name = self.qtree_by_id(qtree_id)
        if name is None:
            return error(404, "entry doesn't exist", "4")

        def effect() -> None:
            del self.qtrees[name]
            shutil.rmtree(self.root / name, ignore_errors=True)

        return self.job(effect)

    def qtree_post(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        name = body["name"]
        if name in self.qtrees:
            return error(409, f'A qtree named "{name}" already exists.', "917525")

        def effect() -> None:
            self.qtrees[name] = {"id": len(self.qtrees) + 1, **body}
            mode = int(str(body.get("unix_permissions", 755)), 8)
            (self.root / name).mkdir(mode=mode)
            self.qtrees[name]["inode"] = (self.root / name).stat().st_ino

        return self.job(effect)

    def rule_list(self, request: httpx.Request) -> httpx.Response:
        name = request.url.params.get("qtree.name")
        records = [
            {"uuid": u, **r} for u, r in self.rules.items() if name in (None, r["qtree"]["name"])
        ]
        return self.page(request, records)

    def rule_for(self, name: str) -> dict[str, Any] | None:
        return next((r for r in self.rules.values() if r["qtree"]["name"] == name), None)

    def rule_post(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if self.rule_for(body["qtree"]["name"]) is not None:
            return error(409, "duplicate entry", "5308568")

        def effect() -> None:
            rule = {"type": body["type"], "qtree": {"name": body["qtree"]["name"]}}
            if "space" in body:
                rule["space"] = dict(body["space"])
            self.rules[str(uuid.uuid4())] = rule

        return self.job(effect)

    def rule_patch(self, request: httpx.Request, rule: str) -> httpx.Response:
        if rule not in self.rules:
            return error(404, "entry doesn't exist", "4")
        body = json.loads(request.content)

        def effect() -> None:
            self.rules[rule].setdefault("space", {}).update(body["space"])

        return self.job(effect)

    def rule_delete(self, request: httpx.Request, rule: str) -> httpx.Response:
        if rule not in self.rules:
            return error(404, "entry doesn't exist", "4")

        def effect() -> None:
            self.rules.pop(rule, None)

        return self.job(effect)

    def reports(self, request: httpx.Request) -> httpx.Response:
        name = request.url.params.get("qtree.name")
        records = []
        for rule in self.rules.values():
            qtree = rule["qtree"]["name"]
            if not self.quota_enabled or name not in (None, qtree):
                continue
            used = sum(
                p.stat().st_size
                for p in (self.root / qtree).rglob("*")
                if p.is_file() and not p.is_symlink()
            )
            space: dict[str, Any] = {"used": {"total": used}}
            if rule.get("space", {}).get("hard_limit"):
                space["hard_limit"] = rule["space"]["hard_limit"]
            records.append(
                {
                    "type": "tree",
                    "qtree": {"id": self.qtrees.get(qtree, {}).get("id", 0), "name": qtree},
                    "volume": {"uuid": self.volume_uuid, "name": VOLUME},
                    "svm": {"uuid": self.svm_uuid, "name": "svm1"},
                    "space": space,
                }
            )
        return self.page(request, records)

    def snap_list(self, request: httpx.Request, vol: str) -> httpx.Response:
        pattern = request.url.params.get("name", "*")
        records = [
            {"uuid": u, **s} for u, s in self.snapshots.items() if matches(s["name"], pattern)
        ]
        return self.page(request, records)

    def snap_post(self, request: httpx.Request, vol: str) -> httpx.Response:
        body = json.loads(request.content)
        name = body["name"]

        def effect() -> None:
            where = self.root / ".snapshot" / name
            where.mkdir(parents=True)
            for qtree in self.qtrees:
                if (self.root / qtree).is_dir():
                    shutil.copytree(self.root / qtree, where / qtree, symlinks=True)
            created = f"2026-12-02T03:{len(self.snapshots):02d}:00+00:00"
            self.snapshots[str(uuid.uuid4())] = {"name": name, "create_time": created, "size": 0}

        return self.job(effect)

    def add_foreign_snapshot(self, name: str) -> None:
        """A snapshot the array's schedule took (hourly, daily…), not ours."""
        created = "2026-12-01T00:05:00+00:00"
        self.snapshots[str(uuid.uuid4())] = {"name": name, "create_time": created, "size": 1}

    def snap_delete(self, request: httpx.Request, snap: str) -> httpx.Response:
        found = self.snapshots.get(snap)
        if found is None:
            return error(404, "entry doesn't exist", "4")

        def effect() -> None:
            shutil.rmtree(self.root / ".snapshot" / found["name"], ignore_errors=True)
            del self.snapshots[snap]

        return self.job(effect)


def matches(name: str, pattern: str) -> bool:
    """ONTAP's query match: a trailing ``*`` is a prefix match."""
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def error(status: int, message: str, code: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"message": message, "code": code}})


def options(**extra: Any) -> dict[str, Any]:
    """The volume's options, the password read from the environment (tests set it)."""
    return {
        "endpoint": BASE,
        "volume": VOLUME,
        "username": USER,
        "password_env": "SP_TEST_ONTAP_PASSWORD",
        **extra,
    }


def fake_driver(root: Path, **extra: Any) -> tuple[Driver, FakeOntap]:
    """The ``netapp`` driver on ``root``, talking to a fake ONTAP that serves ``root``."""
    os.environ.setdefault("SP_TEST_ONTAP_PASSWORD", PASSWORD)
    fake = FakeOntap(root.resolve())
    built = netapp_driver(root, options=options(**extra), transport=fake.transport)
    return built, fake
