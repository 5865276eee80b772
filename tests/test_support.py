"""The test suite's own tools: what they leave behind at the end of a test."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio

from tests.support.server import clean_environment, serving
from tests.support.tcp_proxy import TcpProxy


def test_a_served_process_leaves_no_pipe_open_and_its_logs_readable(tmp_path: Path) -> None:
    # An output pipe left open is a ResourceWarning printed at the interpreter's exit.
    with serving(cwd=tmp_path, env=clean_environment()) as server:
        log_file = server.process.stdout
    assert log_file is not None and log_file.closed
    assert "storage-proxy ready" in server.output()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_cutting_a_proxy_drops_its_open_connections_at_once() -> None:
    # Since Python 3.12 a server's wait_closed() waits for every connection it accepted:
    # waiting for it before dropping them would never return.
    upstream = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = TcpProxy("127.0.0.1", upstream.sockets[0].getsockname()[1])
    await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        with anyio.fail_after(5):
            await proxy.cut()
            assert await reader.read() == b""  # the client sees its connection end
    finally:
        writer.close()
        upstream.close()
        await upstream.wait_closed()
