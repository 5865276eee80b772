"""What `ro`, `rw` and `rwd` allow, operation by operation: the table in README.md is the
contract, and each of its rows is driven through the API as a user the vfolder is shared with,
once with each mode, on SQLite and PostgreSQL. A refusal is a 403 problem that leaves the
vfolder as it was (moving over an existing file destroyed it with only `rw`)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.support.app import SERVICE, bearer, user_token

README = Path(__file__).resolve().parents[1] / "README.md"
TABLE_MARK = "<!-- mode table: tests/test_modes.py reads it -->"
MODES = ("ro", "rw", "rwd")
CALLER = bearer(user_token("caller"))
TUS = {"Tus-Resumable": "1.0.0"}
BOUNDARY = "mode-table-boundary"

Request = Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Row:
    needs: str | None  # the weakest mode that may; None: no mode does (managers only)
    request: Request
    # What must still hold after a refusal (the file a refused request would destroy).
    untouched: str = "seed.txt"


def _first_failure(responses: list[httpx.Response]) -> httpx.Response:
    return next((r for r in responses if not r.is_success), responses[-1])


async def _uploads(c: httpx.AsyncClient, v: str, *, over: bool) -> httpx.Response:
    """PUT, form upload and tus creation; the first that fails (else the last)."""
    names = ["seed.txt"] * 3 if over else [f"new-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    form = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name=files; filename="{names[1]}"\r\n\r\n'
        f"form\r\n--{BOUNDARY}--\r\n"
    ).encode()
    metadata = f"path {base64.b64encode(names[2].encode()).decode()}" + (
        ",overwrite MQ==" if over else ""
    )
    responses = [
        await c.put(f"{v}/files/{names[0]}", content=b"put", headers=CALLER),
        await c.post(
            f"{v}/upload",
            params={"overwrite": "true"} if over else {},
            content=form,
            headers={**CALLER, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        ),
        await c.post(
            f"{v}/uploads",
            headers={**CALLER, **TUS, "Upload-Length": "3", "Upload-Metadata": metadata},
        ),
    ]
    return _first_failure(responses)


async def _all(*requests: Awaitable[httpx.Response]) -> httpx.Response:
    return _first_failure([await request for request in requests])


ROWS: dict[str, Row] = {
    "see the vfolder and its usage": Row(
        "ro", lambda c, v: _all(c.get(v, headers=CALLER), c.get(f"{v}/usage", headers=CALLER))
    ),
    "mount information": Row("ro", lambda c, v: c.get(f"{v}/mount", headers=CALLER)),
    "list and stat": Row(
        "ro",
        lambda c, v: _all(
            c.get(f"{v}/list", headers=CALLER),
            c.get(f"{v}/stat", params={"path": "seed.txt"}, headers=CALLER),
        ),
    ),
    "download": Row("ro", lambda c, v: c.get(f"{v}/files/seed.txt", headers=CALLER)),
    "download transfer token": Row(
        "ro",
        lambda c, v: c.post(
            f"{v}/transfer-tokens",
            json={"operation": "download", "path": "seed.txt"},
            headers=CALLER,
        ),
    ),
    "clone into a vfolder of one's own": Row(
        "ro",
        lambda c, v: c.post(
            f"{v}/clone",
            json={"name": f"copy-{uuid.uuid4().hex[:6]}", "volume": "local"},
            headers=CALLER,
        ),
    ),
    "list and browse snapshots": Row(
        "ro",
        lambda c, v: _all(
            c.get(f"{v}/snapshots", headers=CALLER),
            c.get(f"{v}/snapshots/s1/list", headers=CALLER),
        ),
    ),
    "upload a new file": Row("rw", lambda c, v: _uploads(c, v, over=False)),
    "upload over an existing file": Row("rw", lambda c, v: _uploads(c, v, over=True)),
    "upload transfer token": Row(
        "rw",
        lambda c, v: c.post(
            f"{v}/transfer-tokens", json={"operation": "upload", "path": "x.txt"}, headers=CALLER
        ),
    ),
    "list one's unfinished uploads": Row(
        "rw", lambda c, v: c.get(f"{v}/uploads", headers={**CALLER, **TUS})
    ),
    "create a directory": Row(
        "rw", lambda c, v: c.post(f"{v}/mkdir", json={"path": "made"}, headers=CALLER)
    ),
    "move or rename to a free name": Row(
        "rw",
        lambda c, v: c.post(
            f"{v}/move", json={"source": "seed.txt", "destination": "moved.txt"}, headers=CALLER
        ),
    ),
    "take a snapshot": Row(
        "rw", lambda c, v: c.post(f"{v}/snapshots", json={"name": "s2"}, headers=CALLER)
    ),
    "restore one file from a snapshot": Row(
        "rw",
        lambda c, v: c.post(f"{v}/snapshots/s1/restore", json={"path": "a.txt"}, headers=CALLER),
    ),
    "move over an existing entry": Row(
        "rwd",
        lambda c, v: c.post(
            f"{v}/move",
            json={"source": "other.txt", "destination": "seed.txt", "overwrite": True},
            headers=CALLER,
        ),
    ),
    "delete files": Row(
        "rwd", lambda c, v: c.post(f"{v}/delete", json={"paths": ["seed.txt"]}, headers=CALLER)
    ),
    "restore the whole vfolder from a snapshot": Row(
        "rwd", lambda c, v: c.post(f"{v}/snapshots/s1/restore", json={}, headers=CALLER)
    ),
    "delete a snapshot": Row("rwd", lambda c, v: c.delete(f"{v}/snapshots/s1", headers=CALLER)),
    "rename the vfolder, change its group mode": Row(
        None,
        lambda c, v: _all(
            c.patch(v, json={"name": f"renamed-{uuid.uuid4().hex[:6]}"}, headers=CALLER),
            c.patch(v, json={"group_mode": "rwd"}, headers=CALLER),
        ),
    ),
    "share it": Row(
        None,
        lambda c, v: _all(
            c.get(f"{v}/grants", headers=CALLER),
            c.put(f"{v}/grants/user/mallory", json={"mode": "rwd"}, headers=CALLER),
        ),
    ),
    "scan it now, correcting its usage": Row(
        "rw", lambda c, v: c.post(f"{v}/reconcile", headers=CALLER)
    ),
    "set its quota": Row(
        None,
        lambda c, v: c.put(
            f"/v1/quotas/vfolder/{v.rsplit('/', 1)[1]}", json={"limit_bytes": 1}, headers=CALLER
        ),
    ),
    "delete the vfolder": Row(None, lambda c, v: c.delete(v, headers=CALLER)),
}


def _marks(row: Row) -> tuple[str, ...]:
    if row.needs is None:
        return ("✗",) * len(MODES)
    weakest = MODES.index(row.needs)
    return tuple("✓" if i >= weakest else "✗" for i in range(len(MODES)))


def _readme_table() -> dict[str, tuple[str, ...]]:
    lines = README.read_text(encoding="utf-8").split(TABLE_MARK, 1)[1].strip().splitlines()
    table = {}
    for line in lines[2:]:  # past the header and its rule
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        table[cells[0]] = tuple(cells[2:])
    return table


def test_readme_states_exactly_this_table() -> None:
    assert _readme_table() == {name: _marks(row) for name, row in ROWS.items()}


async def _shared_vfolder(client: httpx.AsyncClient, mode: str) -> tuple[str, str]:
    created = await client.post(
        "/v1/vfolders",
        json={"name": f"vf-{uuid.uuid4().hex[:8]}", "volume": "local", "owner_id": "owner"},
        headers=SERVICE,
    )
    assert created.status_code == 201, created.text
    vfolder_id = created.json()["id"]
    url = f"/v1/vfolders/{vfolder_id}"
    granted = await client.put(f"{url}/grants/user/caller", json={"mode": mode}, headers=SERVICE)
    assert granted.status_code == 201, granted.text
    for name in ("seed.txt", "other.txt"):
        seeded = await client.put(f"{url}/files/{name}", content=name.encode(), headers=SERVICE)
        assert seeded.status_code == 201, seeded.text
    return vfolder_id, url


def _root(settings: Settings, vfolder_id: str) -> Path:
    hex_id = vfolder_id.replace("-", "")
    return settings.data_dir / "volumes" / "local" / hex_id[:2] / hex_id[2:4] / hex_id


@pytest.mark.parametrize("operation", list(ROWS))
async def test_each_mode_may_do_what_the_table_says(
    client: httpx.AsyncClient, settings: Settings, operation: str
) -> None:
    row = ROWS[operation]
    for mode, mark in zip(MODES, _marks(row), strict=True):
        vfolder_id, url = await _shared_vfolder(client, mode)
        response = await row.request(client, url)
        where = f"{operation} as {mode}: {response.status_code} {response.text}"
        if mark == "✓":
            # Allowed; a snapshot operation then finds that this volume takes none.
            assert response.is_success or (
                response.status_code == 409
                and response.json()["type"] == "/problems/capability-missing"
            ), where
            continue
        assert response.status_code == 403, where
        assert response.headers["content-type"] == "application/problem+json", where
        assert response.json()["type"] == "/problems/forbidden", where
        seed = _root(settings, vfolder_id) / row.untouched
        assert seed.read_bytes() == b"seed.txt", where
