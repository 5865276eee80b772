from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from app.auth.transfer import MAX_TTL_SECONDS, TransferOperation
from app.errors import Problem
from drivers.paths import display_text, is_utf8
from drivers.types import EntryType, FileEntry

PathText = Annotated[str, Field(max_length=4096, description="Relative to the vfolder root.")]


RAW_PATH_DESCRIPTION = (
    "Set only when the path is not UTF-8 (a name made through a mount): its exact bytes, "
    "percent-encoded. `name` and `path` then show each such byte as U+FFFD, for display. "
    "Address the entry with `raw_path`: as it is in a URL (`files/{raw_path}`, "
    "`?path={raw_path}`), or in a move or delete body with `percent_encoded: true`."
)
PERCENT_ENCODED_DESCRIPTION = (
    "The paths are percent-encoded bytes (as `raw_path` in listings), to name entries "
    "whose names are not UTF-8. A destination must still decode as UTF-8."
)


class FileInfo(BaseModel):
    name: str
    path: str = Field(description="Relative to the vfolder root.")
    raw_path: str | None = Field(default=None, description=RAW_PATH_DESCRIPTION)
    type: EntryType
    size: int = Field(description="Bytes (for a symlink: the length of its target).")
    mtime: datetime
    mode: int = Field(description="Permission bits, e.g. 420 (0o644).")
    symlink_target: str | None = Field(
        default=None,
        description="Where a symlink points; never followed by the proxy. Bytes that are "
        "not UTF-8 show as U+FFFD.",
    )

    @classmethod
    def of(cls, entry: FileEntry) -> FileInfo:
        return cls.model_construct(**_fields(entry))


def _fields(entry: FileEntry) -> dict[str, Any]:
    name, path, target, raw = entry.name, str(entry.path), entry.target, None
    if not is_utf8(path):  # a very few entries: names made through a mount
        raw = quote(entry.path.raw, safe="/")
        name, path = display_text(name), display_text(path)
    if target is not None and not is_utf8(target):
        target = display_text(target)
    return {
        "name": name,
        "path": path,
        "raw_path": raw,
        "type": entry.type,
        "size": entry.size,
        "mtime": datetime.fromtimestamp(entry.mtime_ns / 1e9, UTC),
        "mode": entry.mode,
        "symlink_target": target,
    }


def file_info_json(entry: FileEntry) -> bytes:
    """The JSON of ``FileInfo.of(entry)``, without building the model: an NDJSON listing of
    100,000 entries spends most of its time here. Same serializer, same output."""
    return to_json(_fields(entry))


class FileList(BaseModel):
    items: list[FileInfo]
    next_cursor: str | None = Field(
        description="More entries follow when set: pass it as `cursor`. Never a silent cut."
    )


class ListingEnd(BaseModel):
    """The last line of an NDJSON listing: whether it is complete, and why not."""

    complete: bool
    count: int
    error: Problem | None = None


class MkdirRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: PathText
    parents: bool = Field(default=False, description="Create missing parent directories.")
    exist_ok: bool = Field(default=False, description="An existing directory is not an error.")


class MoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: PathText
    destination: PathText
    overwrite: bool = Field(
        default=False,
        description="Replace an existing file, or an empty directory with a directory "
        "(replacing destroys it: that takes mode rwd, else 403).",
    )
    percent_encoded: bool = Field(default=False, description=PERCENT_ENCODED_DESCRIPTION)


class DeleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[PathText] = Field(min_length=1, max_length=1000)
    recursive: bool = Field(default=False, description="Delete directories with their content.")
    percent_encoded: bool = Field(default=False, description=PERCENT_ENCODED_DESCRIPTION)


class DeleteResult(BaseModel):
    path: str
    status: Literal["deleted", "failed"]
    problem: Problem | None = None


class DeleteResults(BaseModel):
    results: list[DeleteResult]


class UploadedFile(BaseModel):
    path: str
    size: int
    etag: str
    created: bool = Field(description="False when an existing file was replaced.")


class UploadedFiles(BaseModel):
    items: list[UploadedFile]


def file_list_json(entries: list[FileEntry], next_cursor: str | None) -> bytes:
    """The JSON of a ``FileList`` page, serialized without building 1,000 models."""
    return to_json({"items": [_fields(e) for e in entries], "next_cursor": next_cursor})


class TransferTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operation: TransferOperation
    path: PathText
    prefix: bool = Field(
        default=False, description="Cover everything below `path`, not just `path` itself."
    )
    ttl_seconds: int = Field(default=600, ge=1, le=MAX_TTL_SECONDS)


class TransferToken(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer` or as `?token=`.")
    jti: str
    operation: TransferOperation
    path: str
    prefix: bool
    expires_at: datetime
    url: str | None = Field(
        description="For one file: the URL to GET (download) or PUT (upload), token included."
    )
