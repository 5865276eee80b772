"""The ``storage-proxy`` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import yaml

from app import __version__
from app.auth.principal import Role
from app.auth.tokens import mint_user_token
from app.config import ConfigurationError, Settings
from app.db.availability import DatabaseUnreachable, require_reachable_blocking
from app.tasks.watch import start_scan, watch

if TYPE_CHECKING:
    import uvicorn


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except (ConfigurationError, DatabaseUnreachable) as exc:
        print(f"storage-proxy: {exc}", file=sys.stderr)
        return 2
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storage-proxy", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="listen address (default: STORAGE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: STORAGE_PORT or 6021)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--migrate",
        action="store_true",
        help="apply pending migrations first (always done on the embedded SQLite)",
    )
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(handler=_migrate)

    openapi = commands.add_parser("openapi", help="write the OpenAPI spec")
    openapi.add_argument(
        "--output", type=Path, default=Path("openapi/openapi.yaml"), help="'-' for stdout"
    )
    openapi.set_defaults(handler=_openapi)

    token = commands.add_parser("token", help="mint a user JWT signed with the configured secret")
    token.add_argument("--user", required=True, help="user id (the token's sub)")
    token.add_argument("--group", action="append", default=[], help="group id (repeatable)")
    token.add_argument("--role", choices=[r.value for r in Role], default=Role.USER.value)
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.set_defaults(handler=_token)

    tasks = commands.add_parser("tasks", help="follow background tasks of a running service")
    task_commands = tasks.add_subparsers(required=True, metavar="ACTION")
    watch = task_commands.add_parser("watch", help="a live progress bar until the task ends")
    watch.add_argument("task_id")
    _client_options(watch)
    watch.set_defaults(handler=_tasks_watch)

    scan = commands.add_parser(
        "scan", help="reconcile a volume's usage ledger with the disk, showing progress"
    )
    scan.add_argument("volume")
    _client_options(scan)
    scan.set_defaults(handler=_scan)

    adopt = commands.add_parser(
        "import-backendai",
        help="our volumes config from a Backend.AI storage-proxy's, and its vfolders adopted "
        "in place (dry run unless --apply)",
    )
    adopt.add_argument("--config", type=Path, required=True, help="Backend.AI's TOML file")
    adopt.add_argument("--write", type=Path, help="write our volumes TOML here (default: print)")
    adopt.add_argument("--apply", action="store_true", help="register the vfolders found")
    adopt.add_argument(
        "--scope-type",
        choices=["user", "project"],
        default="user",
        help="kind of every quota scope the scopes file does not name (default: user)",
    )
    adopt.add_argument(
        "--scopes-file", type=Path, help='JSON object: scope UUID or hex → "user" | "project"'
    )
    adopt.set_defaults(handler=_import_backendai)

    version = commands.add_parser("version", help="print the version")
    version.set_defaults(handler=lambda _args: print(__version__) or 0)
    return parser


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the service (default: http://STORAGE_HOST:STORAGE_PORT)")
    parser.add_argument("--token", help="bearer token (default: the first of STORAGE_SERVICE_KEYS)")


def _client(args: argparse.Namespace) -> httpx.Client:
    settings = Settings()
    url = args.url or f"http://{settings.host}:{settings.port}"
    token = args.token or settings.service_keys[0]
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _finish(task: dict[str, object]) -> int:
    print(json.dumps(task, indent=2))
    return 0 if task.get("state") == "succeeded" else 1


def _tasks_watch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return _finish(watch(client, args.task_id))


def _scan(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return _finish(watch(client, start_scan(client, args.volume)))


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.db.migrate import upgrade_to_head_blocking
    from app.http_protocol import PROTOCOL_IMPORT_STRING
    from app.observability.metrics import prepare_multiprocess_dir, remove_multiprocess_dir
    from app.volumes.registry import VolumeRegistry

    settings = Settings()
    settings.check_safe_to_start()
    # Fail here, on one readable line, on a broken STORAGE_CONFIG (unknown key, driver or
    # option) or an unreachable database, not in each worker with a traceback.
    VolumeRegistry.from_config(settings.volumes())
    require_reachable_blocking(settings.effective_database_url)
    if settings.uses_embedded_database or args.migrate:
        upgrade_to_head_blocking(settings.effective_database_url)
    if args.workers > 1 and not settings.redis_url:
        # Workers share the database but not their memory: a cache in each could serve what
        # another worker already changed.
        os.environ["STORAGE_LOCAL_CACHE"] = "false"
    # Set before the workers import prometheus-client, which reads it once at import.
    metrics_dir = prepare_multiprocess_dir(args.workers)
    port = args.port or settings.port
    if settings.manager_api_enabled and settings.manager_api_port == port:
        raise ConfigurationError(
            f"STORAGE_MANAGER_API_PORT {port} is the main port too: give the Manager-facing "
            "API a port of its own"
        )
    config = uvicorn.Config(
        "app.main:create_app_from_environment",
        factory=True,
        host=args.host or settings.host,
        port=port,
        workers=args.workers,
        log_config=None,
        proxy_headers=False,
        http=PROTOCOL_IMPORT_STRING,
    )
    try:
        _run_listeners(config, settings)
    finally:
        remove_multiprocess_dir(metrics_dir)
    return 0


def _run_listeners(config: uvicorn.Config, settings: Settings) -> None:
    """The main socket, and the Manager-facing one when configured: every worker serves both
    (the app tells them apart by the port a request arrived on)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    sockets = [config.bind_socket()]
    if settings.manager_api_enabled:
        manager = uvicorn.Config(
            config.app, host=settings.manager_api_host, port=settings.manager_api_port
        )
        sockets.append(manager.bind_socket())
    server = uvicorn.Server(config)
    if config.workers > 1:
        Multiprocess(config, sockets=sockets).run()
    else:
        server.run(sockets=sockets)


def _import_backendai(args: argparse.Namespace) -> int:
    from app.backendai.importer import (
        SCOPE_KINDS,
        describe,
        extra_options_note,
        render_volumes_toml,
        run_import,
    )

    plan = run_import(
        Settings(),
        args.config,
        apply=args.apply,
        default_kind=SCOPE_KINDS[args.scope_type],
        scopes_file=args.scopes_file,
    )
    text = render_volumes_toml(plan.volumes, source=args.config)
    if args.write is None:
        sys.stdout.write(text)
    else:
        args.write.write_text(text, encoding="utf-8")
        print(f"wrote {args.write}", file=sys.stderr)
    for line in [*extra_options_note(args.config), *describe(plan, apply=args.apply)]:
        print(line, file=sys.stderr)
    return 1 if plan.conflicts else 0


def _migrate(_args: argparse.Namespace) -> int:
    from app.db.migrate import head_revision, upgrade_to_head_blocking

    settings = Settings()
    require_reachable_blocking(settings.effective_database_url)
    upgrade_to_head_blocking(settings.effective_database_url)
    print(f"database at revision {head_revision()}")
    return 0


def render_openapi_yaml() -> str:
    """The spec exactly as committed in openapi/openapi.yaml."""
    from app.main import create_app

    spec = create_app(Settings(env="dev")).openapi()
    return yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)


def _openapi(args: argparse.Namespace) -> int:
    text = render_openapi_yaml()
    if str(args.output) == "-":
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _token(args: argparse.Namespace) -> int:
    settings = Settings()
    print(
        mint_user_token(
            secret=settings.jwt_secret,
            audience=settings.jwt_audience,
            user_id=args.user,
            groups=args.group,
            role=Role(args.role),
            ttl_seconds=args.ttl,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
