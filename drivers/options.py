"""Typed volume options (``[volumes.<name>.options]``): one pydantic model per backend. An
option the model does not name is refused when the volume is built (a typo would otherwise
silently do nothing), and so is a value of the wrong type.

Secrets never sit in the volumes file: a backend names an environment variable
(``password_env = "ONTAP_PASSWORD"``) or a file (``password_file = "/run/secrets/ontap"``),
read once when the volume is built (``read_secret``). The value is a ``SecretStr``: it shows
as ``**********`` in reprs, logs and errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from drivers.driver import DEFAULT_DIR_MODE
from drivers.layout import BACKENDAI, SHARDED, VFolderLayout, build_layout


def _mode(value: object) -> object:
    """``dir_mode`` as TOML writes it: an integer, or a string such as ``"0o750"``."""
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            raise ValueError(f"must be an octal mode such as '0o755', not {value!r}") from None
    return value


class DriverOptions(BaseModel):
    """The base of every backend's options: unknown names and wrong types are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PosixOptions(DriverOptions):
    """What every backend over a POSIX path takes."""

    layout: Literal["sharded", "backendai"] = Field(
        default="sharded",
        description=f"`{SHARDED}`: <hex[0:2]>/<hex[2:4]>/<hex>; `{BACKENDAI}`: Backend.AI's "
        "directory per quota scope (drivers/layout.py).",
    )
    dir_mode: Annotated[int, BeforeValidator(_mode), Field(ge=0, le=0o7777)] = DEFAULT_DIR_MODE
    mount_options: tuple[str, ...] = Field(
        default=(), description="Handed to Agents with the mount information."
    )

    def build_layout(self, root: Path) -> VFolderLayout:
        return build_layout(self.layout, root.resolve())


def read_secret(what: str, *, env: str | None, file: Path | None) -> SecretStr:
    """The secret named by an option pair such as ``password_env`` / ``password_file``
    (exactly one of them), read now. ``ValueError`` names where it was looked for, never the
    value."""
    if (env is None) == (file is None):
        raise ValueError(f"give exactly one of {what}_env or {what}_file")
    if env is not None:
        value = os.environ.get(env, "")
        if not value:
            raise ValueError(f"{what}_env: environment variable {env} is not set or empty")
        return SecretStr(value)
    assert file is not None
    try:
        value = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{what}_file: cannot read {file}: {exc.strerror}") from None
    if not value:
        raise ValueError(f"{what}_file: {file} is empty")
    return SecretStr(value)
