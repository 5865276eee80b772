"""Every operation of the committed spec (openapi/openapi.yaml), fuzzed by schemathesis, as a
user and as a service key, on SQLite and on PostgreSQL: no answer is a 5xx, and every answer is
one the spec documents (its status, its content type, a body that validates against the
documented schema; errors are problem+json, which the spec says for every error status).

A method a path does not have must answer 405 with an `Allow` that lists the ones it has.

Each principal and each database is fuzzed, in pairs: the user on SQLite, the service key on
PostgreSQL (what a principal may reach does not depend on the database, and the database's
errors do not depend on who asked). `STORAGE_TEST_SPEC_FUZZ_ALL=1` runs all four combinations,
at twice the cost of the suite's longest module.

The run is bounded and reproducible: a fixed seed, derandomized generation, no example
database, and a fixed number of examples per operation. The app runs in-process (schemathesis'
ASGI transport), at the suite's log level.

Parameters and bodies are what the fuzzer generates, or real values instead: objects created
first (vfolders with files, a tus upload, a grant, a task) and headers a client would send, so
the file, upload and task routes are reached past their 404, 412 and 422."""

from __future__ import annotations

import base64
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from app.main import create_app
from tests.conftest import _truncate
from tests.support.app import SERVICE_KEY, make_settings, user_token
from tests.support.sqlite_template import migrated_sqlite

# The coverage check reads what the fuzz of its combination recorded in the same process: the
# suite's `--dist loadfile` (pyproject.toml) keeps a module on one worker.
pytestmark = pytest.mark.slow

SPEC = Path(__file__).resolve().parents[1] / "openapi" / "openapi.yaml"
EXAMPLES_PER_OPERATION = 15
SEED = 20261201
# Longer than this is a hang (an event stream that never ends, a lock never released).
REQUEST_TIMEOUT_SECONDS = 10.0

# No 5xx; the status, the content type, the body and the headers are the documented ones (the
# spec gives every error status application/problem+json and the Problem schema); a method the
# path does not have is a 405 whose Allow lists the ones it has.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    unsupported_method,
    allow_header_conformance,
]

FUZZ_USER = "fuzz-user"
FUZZ_GROUP = "fuzz-group"
SERVICE_HEADERS = {"Authorization": f"Bearer {SERVICE_KEY}"}
FILES = {"hello.txt": b"hello, fuzz\n", "docs/readme.md": b"# readme\n", "empty": b""}

# Ids the fuzzer draws besides its own. The vfolders are created under these ids: the target
# (the principal may do anything there; drawn most often), one at its quota, one the fuzz user
# may only read, one deleted. The upload and the task get their ids from the server, and
# `Target.aim` swaps them in for these placeholders.
TARGET_VFOLDER = "5eed0000-0000-4000-8000-000000000001"
FULL_VFOLDER = "5eed0000-0000-4000-8000-000000000002"
READ_ONLY_VFOLDER = "5eed0000-0000-4000-8000-000000000003"
DELETED_VFOLDER = "5eed0000-0000-4000-8000-000000000004"
VICTIM_VFOLDERS = ["5eed0000-0000-4000-8000-000000000005", "5eed0000-0000-4000-8000-000000000006"]
UPLOAD_PLACEHOLDER = "5eed0000-0000-4000-8000-0000000000a1"
TASK_PLACEHOLDER = "5eed0000-0000-4000-8000-0000000000b1"
REAL_PATH_PARAMETERS: dict[str, list[str]] = {
    "vfolder_id": [TARGET_VFOLDER] * 3 + [FULL_VFOLDER, READ_ONLY_VFOLDER, DELETED_VFOLDER],
    "path": [*FILES, "docs", "new.bin"],
    "upload_id": [UPLOAD_PLACEHOLDER],
    "task_id": [TASK_PLACEHOLDER],
    "volume": ["local"],
    "scope_type": ["vfolder", "user", "group"],
    "scope_id": [TARGET_VFOLDER, FULL_VFOLDER, FUZZ_USER, FUZZ_GROUP],
    "grantee_type": ["user", "group"],
    "grantee_id": ["friend", FUZZ_GROUP],
    "name": ["snap"],
}
PATHS = ["", *FILES, "docs", "docs/new.md", "new.bin"]
REAL_QUERY: dict[str, list[Any]] = {"path": PATHS, "dir": ["", "docs"], "volume": ["local"]}
REAL_BODY: dict[str, list[Any]] = {
    "volume": ["local"],
    "path": PATHS,
    "paths": [[path] for path in PATHS],
    "source": PATHS,
    "destination": PATHS,
    "owner_type": ["user"],
    "owner_id": [FUZZ_USER],
    "mode": ["ro", "rw", "rwd"],
    # With these, an aimed mkdir of an existing directory succeeds: without them the run's
    # one success hung on the fuzzer drawing both flags right, which a change elsewhere in
    # the spec could undo.
    "exist_ok": [True],
    "parents": [True],
}
# Headers as a well-behaved client sends them; None leaves the header out (no checksum, no
# concatenation, an unconditional PUT).
REAL_HEADERS: dict[str, list[Any]] = {
    "tus-resumable": ["1.0.0"],
    "upload-offset": ["0", "10"],
    "upload-length": ["0", "10"],
    "upload-metadata": ["path " + base64.b64encode(b"docs/tus.bin").decode()],
    "upload-checksum": [None],
    "upload-concat": [None],
    "upload-defer-length": [None],
    "if-match": [None],
    "if-none-match": [None],
}
# Deleting the target early would leave every later operation a 404.
DELETES_THE_VFOLDER = "DELETE /v1/vfolders/{vfolder_id}"


@schemathesis.serializer("application/offset+octet-stream")
def _tus_chunk(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """A tus PATCH body is raw bytes."""
    return value if isinstance(value, bytes) else str(value).encode()


schema = schemathesis.openapi.from_path(
    SPEC,
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": EXAMPLES_PER_OPERATION,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
        }
    ),
)


def _aimed(
    generated: dict[str, Any] | None, real: dict[str, list[Any]], declared: Iterable[str] = ()
) -> st.SearchStrategy[dict[str, Any] | None]:
    """``generated`` as it is, or with its entries (and the ``declared`` ones it left out)
    swapped for real values: all of them, as a well-behaved client would send, or some of
    them. An entry that ends up None is left out."""
    if generated is not None and not isinstance(generated, dict):
        return st.just(generated)
    values: dict[str, Any] = dict(generated or {})
    for name in declared:
        values.setdefault(name, None)
    known = [name for name in values if name.lower() in real]
    if not known:
        return st.just(generated)

    def present(drawn: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in drawn.items() if value is not None}

    def real_value(name: str) -> st.SearchStrategy[Any]:
        return st.sampled_from(real[name.lower()])

    well_behaved = {
        name: real_value(name) if name in known else st.just(values[name]) for name in values
    }
    mixed = {
        name: st.one_of(st.just(value), real_value(name)) if name in known else st.just(value)
        for name, value in values.items()
    }
    return st.one_of(
        st.fixed_dictionaries(well_behaved).map(present),
        st.fixed_dictionaries(mixed).map(present),
        st.just(generated),
    )


@schema.hook
def flatmap_path_parameters(
    ctx: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    if ctx.operation is not None and ctx.operation.label == DELETES_THE_VFOLDER:
        return _aimed(path_parameters, {"vfolder_id": VICTIM_VFOLDERS})
    return _aimed(path_parameters, REAL_PATH_PARAMETERS)


@schema.hook
def flatmap_query(
    ctx: schemathesis.HookContext, query: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    declared = [p.name for p in ctx.operation.query] if ctx.operation is not None else []
    return _aimed(query, REAL_QUERY, declared)


@schema.hook
def flatmap_headers(
    ctx: schemathesis.HookContext, headers: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    declared = [p.name for p in ctx.operation.headers] if ctx.operation is not None else []
    return _aimed(headers, REAL_HEADERS, declared)


@schema.hook
def flatmap_body(ctx: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    return _aimed(body, REAL_BODY) if isinstance(body, dict) else st.just(body)


@dataclass
class Target:
    """The app under test, its principal's credentials and the real objects it holds."""

    client: requests.Session
    headers: dict[str, str]
    upload_id: str
    task_id: str
    answers: defaultdict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    # Operations whose fuzz failed (and stopped early): reported there, not again for coverage.
    failed: set[str] = field(default_factory=set)

    def aim(self, case: schemathesis.Case[Any]) -> None:
        swaps = {UPLOAD_PLACEHOLDER: self.upload_id, TASK_PLACEHOLDER: self.task_id}
        for name, value in case.path_parameters.items():
            if value in swaps:
                case.path_parameters[name] = swaps[value]


def _ok(response: requests.Response) -> requests.Response:
    assert response.status_code < 300, (response.status_code, response.text)
    return response


def _seed(client: requests.Session, headers: dict[str, str]) -> Target:
    def create(vfolder_id: str, name: str, owner: str = FUZZ_USER) -> str:
        body = {
            "id": vfolder_id,
            "name": name,
            "volume": "local",
            "owner_type": "user",
            "owner_id": owner,
        }
        _ok(client.post("/v1/vfolders", json=body, headers=SERVICE_HEADERS))
        return f"/v1/vfolders/{vfolder_id}"

    def put(base: str, path: str, content: bytes) -> None:
        _ok(
            client.put(
                f"{base}/files/{path}",
                params={"parents": "true"},
                data=content,
                headers=SERVICE_HEADERS,
            )
        )

    base = create(TARGET_VFOLDER, "fuzz-target")
    for path, content in FILES.items():
        put(base, path, content)
    full = create(FULL_VFOLDER, "fuzz-full")
    put(full, "hello.txt", FILES["hello.txt"])
    _ok(
        client.put(
            f"/v1/quotas/vfolder/{FULL_VFOLDER}",
            json={"limit_bytes": len(FILES["hello.txt"]), "limit_files": 1},
            headers=SERVICE_HEADERS,
        )
    )
    read_only = create(READ_ONLY_VFOLDER, "fuzz-read-only", owner="someone-else")
    put(read_only, "hello.txt", FILES["hello.txt"])
    _ok(
        client.put(
            f"{read_only}/grants/user/{FUZZ_USER}", json={"mode": "ro"}, headers=SERVICE_HEADERS
        )
    )
    _ok(client.delete(create(DELETED_VFOLDER, "fuzz-deleted"), headers=SERVICE_HEADERS))
    for index, vfolder_id in enumerate(VICTIM_VFOLDERS):
        create(vfolder_id, f"fuzz-victim-{index}")
    upload = _ok(
        client.post(
            f"{base}/uploads",
            headers={
                **headers,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "10",
                "Upload-Metadata": "path " + base64.b64encode(b"partial.bin").decode(),
            },
        )
    )
    _ok(client.put(f"{base}/grants/user/friend", json={"mode": "ro"}, headers=SERVICE_HEADERS))
    # A task the principal may see: a clone it started.
    clone = {"name": "fuzz-clone", "volume": "local", "owner_type": "user", "owner_id": FUZZ_USER}
    task = _ok(client.post(f"{base}/clone", json=clone, headers=headers)).json()["task"]
    return Target(
        client=client,
        headers=headers,
        upload_id=upload.headers["Location"].rsplit("/", 1)[-1],
        task_id=str(task["id"]),
    )


PAIRS = [("sqlite", "user"), ("postgresql", "service")]
ALL_COMBINATIONS = [(db, who) for db in ("sqlite", "postgresql") for who in ("user", "service")]


@pytest.fixture(
    scope="module",
    params=ALL_COMBINATIONS if os.environ.get("STORAGE_TEST_SPEC_FUZZ_ALL") == "1" else PAIRS,
    ids=lambda param: "-".join(param),
)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """A fresh app on a fresh database per combination, for the whole run over the spec."""
    database, principal = request.param
    place = tmp_path_factory.mktemp(f"spec-fuzz-{database}-{principal}")
    if database == "sqlite":
        url = migrated_sqlite(place / "meta.sqlite3")
    else:
        url = request.getfixturevalue("postgres_url")
        anyio.run(_truncate, url)
    if principal == "user":
        headers = {"Authorization": f"Bearer {user_token(FUZZ_USER, FUZZ_GROUP)}"}
    else:
        headers = SERVICE_HEADERS
    app = create_app(make_settings(data_dir=place / "data", database_url=url))
    try:
        # The lifespan runs on schemathesis' event-loop thread until shut down below.
        with asgi.get_client(cast("asgi.ASGIApp", app)) as client:
            yield _seed(client, headers)
    finally:
        asgi.shutdown_lifespans()
        if database == "postgresql":
            anyio.run(_truncate, url)


@schema.parametrize()
def test_every_answer_is_documented(case: schemathesis.Case[Any], target: Target) -> None:
    target.aim(case)
    try:
        response = case.call_and_validate(
            session=target.client,
            base_url=f"http://{asgi.HOST}",
            headers=target.headers,
            checks=CHECKS,
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
    except BaseException:  # schemathesis' FailureGroup is a BaseExceptionGroup
        target.failed.add(case.operation.label)
        raise
    target.answers[case.operation.label][response.status_code] += 1


# Operations the run must get a 2xx from, on every combination: the fuzzer reached the
# vfolder's files, its uploads and its tasks, not only their 404s and 422s.
MUST_SUCCEED = {
    "GET /v1/vfolders",
    "PATCH /v1/vfolders/{vfolder_id}",
    "DELETE /v1/vfolders/{vfolder_id}",
    "GET /v1/vfolders/{vfolder_id}/list",
    "GET /v1/vfolders/{vfolder_id}/stat",
    "GET /v1/vfolders/{vfolder_id}/files/{path}",
    "PUT /v1/vfolders/{vfolder_id}/files/{path}",
    "POST /v1/vfolders/{vfolder_id}/upload",
    "POST /v1/vfolders/{vfolder_id}/mkdir",
    "POST /v1/vfolders/{vfolder_id}/delete",
    "HEAD /v1/vfolders/{vfolder_id}/uploads/{upload_id}",
    "GET /v1/tasks/{task_id}",
    "GET /v1/tasks/{task_id}/events",
}


def _fuzzed_here(request: pytest.FixtureRequest) -> set[str]:
    """The operations whose fuzz this session selected for the same combination (an item
    is named ``test_every_answer_is_documented[<operation>]``, its parameter the combination)."""
    combination = request.node.callspec.id
    prefix = f"{test_every_answer_is_documented.__name__}["
    return {
        item.originalname.removeprefix(prefix).removesuffix("]")
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname.startswith(prefix)
        and item.callspec.id == combination
    }


def test_the_run_reached_past_the_404s(target: Target, request: pytest.FixtureRequest) -> None:
    """Runs after the fuzz of its combination (pytest groups a module-scoped parameter's
    tests, and the module stays on one worker): each operation that matters, fuzzed in this
    session, answered a success at least once."""
    expected = MUST_SUCCEED & _fuzzed_here(request)
    if not expected:
        pytest.skip("the fuzz of this combination was not selected in this session")
    succeeded = {
        label for label, statuses in target.answers.items() if any(s < 300 for s in statuses)
    }
    missed = expected - succeeded - target.failed
    assert not missed, {label: dict(target.answers[label]) for label in sorted(missed)}
