"""The shared vendor API client (drivers/rest) against respx-scripted answers: log-in once
and again on 401, retries only where a call cannot be done twice, timeouts, vendor errors and
malformed answers as driver errors, TLS verification on by default, jobs polled to a real
terminal state, and a reachability check reused for a few seconds."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import respx

from drivers.errors import BackendApiError, BackendObjectNotFound, BackendUnavailable
from drivers.options import read_secret
from drivers.rest.client import LoginAuth, VendorClient, require, tls_verification
from drivers.rest.health import RestManagement
from drivers.rest.jobs import JobState, wait_for_job
from drivers.rest.options import RestApiOptions

BASE = "https://array.example"


def options(**extra: Any) -> RestApiOptions:
    return RestApiOptions.model_validate({"endpoint": BASE, **extra})


class TokenLogin(LoginAuth):
    """A header-token exchange, as FlashBlade does it (``api-token`` → ``x-auth-token``)."""

    def login_request(self) -> httpx.Request:
        return httpx.Request("POST", f"{BASE}/api/login", headers={"api-token": "T0KEN"})

    def session_from(self, response: httpx.Response) -> str:
        token: str | None = response.headers.get("x-auth-token")
        if not token:
            raise BackendApiError("no x-auth-token in the log-in answer")
        return token

    def apply(self, request: httpx.Request, session: str) -> None:
        request.headers["x-auth-token"] = session


def client(router: respx.Router, *, auth: httpx.Auth | None = None, **extra: Any) -> VendorClient:
    return VendorClient(
        vendor="array",
        options=options(**extra),
        auth=auth,
        backoff_seconds=0.001,
        transport=httpx.MockTransport(router.handler),
    )


async def test_one_log_in_serves_every_call_and_a_401_logs_in_again_once() -> None:
    router = respx.Router(assert_all_called=False)
    tokens = iter(["s1", "s2", "s3"])
    login = router.post(f"{BASE}/api/login").mock(
        side_effect=lambda request: httpx.Response(200, headers={"x-auth-token": next(tokens)})
    )
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["x-auth-token"])
        # The array forgets the first session after two calls.
        if request.headers["x-auth-token"] == "s1" and len(seen) > 2:
            return httpx.Response(401, json={"message": "session expired"})
        return httpx.Response(200, json={"ok": True})

    router.get(f"{BASE}/api/things").mock(side_effect=answer)
    auth = TokenLogin("array")
    api = client(router, auth=auth)
    async with anyio.create_task_group() as group:  # concurrent first calls: one log-in
        for _ in range(2):
            group.start_soon(api.json, "GET", "/api/things")
    assert login.call_count == 1
    assert await api.json("GET", "/api/things") == {"ok": True}
    assert login.call_count == 2 and seen[-2:] == ["s1", "s2"]
    assert await api.json("GET", "/api/things") == {"ok": True}
    assert login.call_count == 2 and auth.logins == 2


async def test_a_refused_log_in_is_a_clear_error_without_the_secret() -> None:
    router = respx.Router()
    router.post(f"{BASE}/api/login").respond(401, json={"error": {"message": "bad token"}})
    with pytest.raises(BackendApiError, match="log-in refused \\(401\\): bad token") as refused:
        await client(router, auth=TokenLogin("array")).json("GET", "/api/things")
    assert "T0KEN" not in str(refused.value)


async def test_a_safe_call_is_retried_on_5xx_and_a_post_is_not() -> None:
    router = respx.Router()
    flaky = router.get(f"{BASE}/api/volumes").mock(
        side_effect=[httpx.Response(503), httpx.Response(502), httpx.Response(200, json=[1])]
    )
    post = router.post(f"{BASE}/api/snapshots").respond(500, json={"message": "internal"})
    api = client(router)
    assert await api.json("GET", "/api/volumes") == [1]
    assert flaky.call_count == 3
    with pytest.raises(BackendApiError, match="answered 500: internal"):
        await api.json("POST", "/api/snapshots", json={"name": "s"})
    assert post.call_count == 1  # its outcome is unknown: never sent twice


async def test_a_post_declared_idempotent_and_a_429_are_retried() -> None:
    router = respx.Router()
    busy = router.post(f"{BASE}/api/jobs").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(201)]
    )
    api = client(router)
    await api.send("POST", "/api/jobs")
    assert busy.call_count == 2


async def test_retries_are_bounded() -> None:
    router = respx.Router()
    down = router.get(f"{BASE}/api/volumes").respond(503, text="maintenance")
    with pytest.raises(BackendApiError, match="answered 503: maintenance") as failed:
        await client(router, retries=2).json("GET", "/api/volumes")
    assert down.call_count == 3 and failed.value.status == 503


async def test_a_post_is_sent_again_only_when_it_never_left() -> None:
    router = respx.Router()
    attempts = router.post(f"{BASE}/api/qtrees").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(202, json={"job": 1})]
    )
    api = client(router)
    assert await api.json("POST", "/api/qtrees") == {"job": 1}
    assert attempts.call_count == 2
    lost = router.post(f"{BASE}/api/rules").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(BackendUnavailable, match="POST /api/rules: timed out"):
        await api.json("POST", "/api/rules")
    assert lost.call_count == 1


async def test_a_timeout_is_backend_unavailable() -> None:
    router = respx.Router()
    slow = router.get(f"{BASE}/api/volumes").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(BackendUnavailable, match="timed out") as failed:
        await client(router, retries=1).json("GET", "/api/volumes")
    assert not isinstance(failed.value, BackendApiError)
    assert slow.call_count == 2


async def test_the_real_timeout_is_applied() -> None:
    """No transport double: a server that accepts and never answers."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 (not Django)
        api = VendorClient(
            vendor="array",
            options=RestApiOptions.model_validate(
                {"endpoint": f"http://127.0.0.1:{port}", "timeout_seconds": 0.2, "retries": 0}
            ),
        )

        async def hold(stream: anyio.abc.SocketStream) -> None:
            await anyio.sleep(5)

        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, hold)
            with anyio.fail_after(3), pytest.raises(BackendUnavailable, match="timed out"):
                await api.json("GET", "/api/volumes")
            group.cancel_scope.cancel()
        await api.aclose()


async def test_vendor_errors_keep_the_vendor_message_and_code() -> None:
    router = respx.Router()
    router.get(f"{BASE}/api/quota/1").respond(
        404, json={"error": {"message": "entry doesn't exist", "code": "917927"}}
    )
    router.get(f"{BASE}/api/quota/2").respond(400, json={"code": 1, "message": "bad limit"})
    api = client(router)
    with pytest.raises(BackendObjectNotFound, match="entry doesn't exist") as missing:
        await api.json("GET", "/api/quota/1")
    assert missing.value.vendor_code == "917927" and missing.value.status == 404
    with pytest.raises(BackendApiError, match="400: bad limit") as refused:
        await api.json("GET", "/api/quota/2")
    assert refused.value.vendor_code == "1"


async def test_a_malformed_answer_is_a_clear_backend_error() -> None:
    router = respx.Router()
    router.get(f"{BASE}/api/report").respond(200, text="<html>proxy login</html>")
    with pytest.raises(BackendApiError, match="malformed answer: the answer is not JSON"):
        await client(router).json("GET", "/api/report")
    body = {"records": [{"space": {"used": {"total": "12"}}}]}
    with pytest.raises(BackendApiError, match=r"records\.0\.space\.used\.total is str, not int"):
        require(body, "records.0.space.used.total", int, vendor="array")
    with pytest.raises(BackendApiError, match=r"no records\.1\.space"):
        require(body, "records.1.space", dict, vendor="array")
    with pytest.raises(BackendApiError, match="is bool, not int"):
        require({"n": True}, "n", int, vendor="array")
    assert require({"records": [{"n": 3}]}, "records.0.n", int, vendor="array") == 3


def test_tls_is_verified_unless_turned_off_and_a_ca_bundle_is_used(tmp_path: Path) -> None:
    assert tls_verification(options()) is True
    assert tls_verification(options(verify_tls=False)) is False
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(ValueError, match="ca_bundle"):
        tls_verification(options(ca_bundle=str(missing)))
    bundle = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    if not bundle.is_file():
        pytest.skip("no system CA bundle to load")
    context = tls_verification(options(ca_bundle=str(bundle)))
    assert isinstance(context, ssl.SSLContext) and context.verify_mode is ssl.CERT_REQUIRED


def test_secrets_come_from_the_environment_or_a_file_and_never_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARRAY_PASSWORD", "hunter2")
    secret = read_secret("password", env="ARRAY_PASSWORD", file=None)
    assert secret.get_secret_value() == "hunter2" and "hunter2" not in repr(secret)
    (tmp_path / "pw").write_text("s3cret\n")
    assert read_secret("password", env=None, file=tmp_path / "pw").get_secret_value() == "s3cret"
    with pytest.raises(ValueError, match="exactly one of password_env or password_file"):
        read_secret("password", env=None, file=None)
    with pytest.raises(ValueError, match="NOT_SET is not set"):
        read_secret("password", env="NOT_SET", file=None)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_secret("password", env=None, file=tmp_path / "empty")


def job_state(job: dict[str, Any]) -> tuple[JobState, str | None]:
    state = job["state"]
    if state == "success":
        return JobState.SUCCEEDED, None
    if state == "failure":
        return JobState.FAILED, job.get("message")
    return JobState.PENDING, None  # queued, paused, running


async def test_a_job_is_polled_through_queued_and_paused_to_its_end() -> None:
    states = iter(["queued", "paused", "running", "success"])

    async def fetch() -> dict[str, Any]:
        return {"state": next(states)}

    done = await wait_for_job(
        fetch, job_state, what="qtree create", timeout_seconds=5, interval_seconds=0.01
    )
    assert done == {"state": "success"}
    failing = iter([{"state": "running"}, {"state": "failure", "message": "duplicate entry"}])

    async def fetch_failing() -> dict[str, Any]:
        return next(failing)

    with pytest.raises(BackendApiError, match="qtree create failed: duplicate entry"):
        await wait_for_job(
            fetch_failing, job_state, what="qtree create", timeout_seconds=5, interval_seconds=0
        )

    async def forever() -> dict[str, Any]:
        return {"state": "queued"}

    with pytest.raises(BackendUnavailable, match="outcome is unknown"):
        await wait_for_job(
            forever, job_state, what="rule create", timeout_seconds=0.1, interval_seconds=0.02
        )


async def test_reachability_is_asked_once_per_cache_period() -> None:
    router = respx.Router()
    probe = router.get(f"{BASE}/api/cluster").mock(
        side_effect=[httpx.Response(200, json={}), httpx.Response(503)]
    )
    api = client(router, retries=0)
    management = RestManagement(api, lambda: api.json("GET", "/api/cluster"), cache_seconds=60)
    first = await management.check()
    again = await management.check()
    assert first.reachable and again is first and probe.call_count == 1
    fresh = RestManagement(api, lambda: api.json("GET", "/api/cluster"), cache_seconds=0)
    down = await fresh.check()
    assert not down.reachable and "503" in (down.detail or "")
    await management.aclose()
