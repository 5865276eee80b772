"""The client side of tasks, for the command line: follow a task's Server-Sent Events with a
progress bar, and start a volume scan."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import httpx

BAR_WIDTH = 30


def render_bar(progress: dict[str, Any], state: str) -> str:
    current, total, unit = progress["current"], progress["total"], progress["unit"]
    if total:
        filled = min(BAR_WIDTH, BAR_WIDTH * current // total)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return f"[{bar}] {current}/{total} {unit} ({100 * current // total}%) {state}"
    return f"[{'?' * BAR_WIDTH}] {current} {unit} {state}"


def _events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    event, data = "message", ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
        elif not line and data:
            yield event, json.loads(data)
            event, data = "message", ""


def watch(client: httpx.Client, task_id: str, *, out: TextIO = sys.stderr) -> dict[str, Any]:
    """Draws the bar until the task ends; returns the task as last seen."""
    last: dict[str, Any] = {}
    with client.stream("GET", f"/v1/tasks/{task_id}/events", timeout=None) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"{response.status_code}: {response.text}")
        for event, data in _events(response):
            if event == "progress":
                last = data
                out.write("\r" + render_bar(data["progress"], data["state"]))
                out.flush()
    out.write("\n")
    final: dict[str, Any] = client.get(f"/v1/tasks/{task_id}").raise_for_status().json()
    return final or last


def start_scan(client: httpx.Client, volume: str) -> str:
    submitted = client.post(f"/v1/volumes/{volume}/reconcile")
    if submitted.status_code != 202:
        raise RuntimeError(f"{submitted.status_code}: {submitted.text}")
    return str(submitted.json()["id"])
