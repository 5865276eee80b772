"""The one domain error hierarchy and its mapping to RFC 9457 problem types.

Domain errors are plain exceptions: they carry what went wrong, never an HTTP class. Each base
class names its problem (a stable ``type`` slug, a title and a status code) as data; the web
layer (``app.problems``) renders them. Subclasses refine the slug where clients need to tell
cases apart (``/problems/vfolder-name-conflict`` vs ``/problems/vfolder-id-conflict``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from drivers import errors as driver_errors


class Problem(BaseModel):
    """RFC 9457 problem details. Clients branch on `type`, which is stable."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["/problems/vfolder-not-found"])
    title: str
    status: int
    detail: str
    request_id: str | None = Field(default=None, description="Quote it when reporting a bug.")


class DomainError(Exception):
    problem_type: ClassVar[str] = "/problems/internal"
    title: ClassVar[str] = "Internal error"
    status: ClassVar[int] = 500
    # Seconds a client should wait before retrying, sent as Retry-After when set.
    retry_after: ClassVar[int | None] = None

    # (operation, reason) when an access check refused the request: audited and counted.
    denial: tuple[str, str] | None = None

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        # Extra members of the problem body that help a client act (ids, limits…).
        self.extensions = extensions


class InvalidRequest(DomainError):
    problem_type = "/problems/invalid-request"
    title = "Invalid request"
    status = 400


class InvalidCursor(InvalidRequest):
    problem_type = "/problems/invalid-cursor"
    title = "Invalid pagination cursor"


class Unauthenticated(DomainError):
    problem_type = "/problems/unauthenticated"
    title = "Authentication required"
    status = 401


class Forbidden(DomainError):
    problem_type = "/problems/forbidden"
    title = "Forbidden"
    status = 403


class TransferTokenMisused(Forbidden):
    problem_type = "/problems/transfer-token-scope"
    title = "Outside the transfer token's scope"


class NotFound(DomainError):
    problem_type = "/problems/not-found"
    title = "Not found"
    status = 404


class VolumeNotFound(NotFound):
    problem_type = "/problems/volume-not-found"
    title = "Volume not found"


class VFolderNotFound(NotFound):
    problem_type = "/problems/vfolder-not-found"
    title = "Virtual folder not found"


class Conflict(DomainError):
    problem_type = "/problems/conflict"
    title = "Conflict"
    status = 409


class VFolderNameConflict(Conflict):
    problem_type = "/problems/vfolder-name-conflict"
    title = "Virtual folder name already in use"


class VFolderIdConflict(Conflict):
    problem_type = "/problems/vfolder-id-conflict"
    title = "Virtual folder id already used for a different folder"


class VFolderIdNotAllowed(Forbidden):
    problem_type = "/problems/vfolder-id-not-allowed"
    title = "Only service keys choose a vfolder's id"


class PreconditionFailed(DomainError):
    problem_type = "/problems/precondition-failed"
    title = "Precondition failed"
    status = 412


class RequestAborted(DomainError):
    """The client went away mid-request; nobody will read this answer."""

    problem_type = "/problems/request-aborted"
    title = "Request aborted by the client"
    status = 400


class QuotaExceeded(DomainError):
    problem_type = "/problems/quota-exceeded"
    title = "Quota exceeded"
    status = 413


class InsufficientStorage(DomainError):
    problem_type = "/problems/insufficient-storage"
    title = "Insufficient storage"
    status = 507


class Gone(DomainError):
    problem_type = "/problems/gone"
    title = "Gone"
    status = 410


class VFolderDeleted(Gone):
    problem_type = "/problems/vfolder-deleted"
    title = "Virtual folder deleted"


class CapabilityMissing(DomainError):
    problem_type = "/problems/capability-missing"
    title = "The volume's backend cannot do this"
    status = 409


class VFolderNotReady(DomainError):
    problem_type = "/problems/vfolder-not-ready"
    title = "Virtual folder not ready (being cloned)"
    status = 409


class StorageUnavailable(DomainError):
    problem_type = "/problems/storage-unavailable"
    title = "Storage backend unavailable"
    status = 503


class ServiceNotReady(DomainError):
    problem_type = "/problems/not-ready"
    title = "Not ready"
    status = 503


class DependencyUnavailable(DomainError):
    """The database (or another dependency every request needs) cannot be reached."""

    problem_type = "/problems/unavailable"
    title = "A dependency of the service is unavailable; retry shortly"
    status = 503
    retry_after = 5


# -- sharing and resumable uploads (tus) ---------------------------------------------


class UnsupportedVersion(DomainError):
    problem_type = "/problems/tus-version"
    title = "Unsupported Tus-Resumable version"
    status = 412


class UnsupportedMediaType(DomainError):
    problem_type = "/problems/unsupported-media-type"
    title = "Unsupported media type"
    status = 415


class OffsetMismatch(DomainError):
    problem_type = "/problems/upload-offset-mismatch"
    title = "Upload-Offset does not match"
    status = 409


class UploadTooLarge(DomainError):
    problem_type = "/problems/upload-too-large"
    title = "Upload larger than allowed"
    status = 413


class ChecksumMismatch(DomainError):
    problem_type = "/problems/checksum-mismatch"
    title = "Checksum mismatch"
    status = 460


class UploadLocked(DomainError):
    problem_type = "/problems/upload-locked"
    title = "Another request is writing this upload"
    status = 423
    retry_after = 1  # a PATCH that holds the lock usually ends, or is cut, within seconds


class UploadLockLost(UploadLocked):
    problem_type = "/problems/upload-lock-lost"
    title = "This request lost the upload's lock to another writer"


class AccessChangeUnannounced(DomainError):
    """A change that narrows who may use a vfolder (revoke, downgrade, group mode, delete)
    could not be announced to the other nodes, whose caches would go on granting the old
    access: refused, nothing changed."""

    problem_type = "/problems/unavailable"
    title = "Service unavailable; retry shortly"
    status = 503
    retry_after = 2


class TaskNotFound(NotFound):
    problem_type = "/problems/task-not-found"
    title = "Task not found"


class OperationFailed(Conflict):
    """A task a caller waited for (a clone) ended without doing its work."""

    problem_type = "/problems/operation-failed"
    title = "The operation failed"


class OperationStillRunning(DomainError):
    """A caller waited for a task as long as it may; the task goes on (its id is given)."""

    problem_type = "/problems/operation-still-running"
    title = "The operation is still running"
    status = 503
    retry_after = 30


class UploadNotFound(NotFound):
    problem_type = "/problems/upload-not-found"
    title = "Upload not found"


class UploadGone(Gone):
    problem_type = "/problems/upload-gone"
    title = "Upload terminated, expired or finished"


class UploadIsFinal(Forbidden):
    """tus concatenation: a final upload is made of its parts and takes no bytes itself."""

    problem_type = "/problems/upload-is-final"
    title = "A final (concatenated) upload cannot be appended to"


class DestinationExists(Conflict):
    problem_type = "/problems/path-exists"
    title = "Path exists"


class GrantNotFound(NotFound):
    problem_type = "/problems/grant-not-found"
    title = "Grant not found"


class RepeatedPartialUpload(InvalidRequest):
    problem_type = "/problems/upload-concat-repeated-part"
    title = "A partial upload is listed twice in Upload-Concat"


# Driver errors are not domain errors (drivers know nothing of HTTP or of this module); this
# table gives each its problem. Looked up along the exception's class hierarchy.
DRIVER_PROBLEMS: dict[type[driver_errors.DriverError], tuple[str, str, int]] = {
    driver_errors.DriverError: ("/problems/storage-error", "Storage error", 500),
    driver_errors.BackendUnavailable: (
        StorageUnavailable.problem_type,
        StorageUnavailable.title,
        503,
    ),
    driver_errors.BackendCommandFailed: (
        "/problems/storage-command-failed",
        "A storage backend command failed",
        503,
    ),
    driver_errors.BackendApiError: (
        "/problems/storage-api-error",
        "The storage system's management API failed",
        502,
    ),
    driver_errors.BackendQuotaExceeded: (QuotaExceeded.problem_type, QuotaExceeded.title, 413),
    driver_errors.StorageFull: (InsufficientStorage.problem_type, InsufficientStorage.title, 507),
    driver_errors.VFolderDirectoryMissing: (
        "/problems/vfolder-directory-missing",
        "The vfolder's directory is missing on its volume",
        503,
    ),
    driver_errors.UnsafePath: ("/problems/unsafe-path", "Unsafe path", 400),
    driver_errors.SymlinkNotFollowed: (
        "/problems/symlink-not-followed",
        "Symlinks are never followed",
        400,
    ),
    driver_errors.PathNotFound: ("/problems/path-not-found", "Path not found", 404),
    driver_errors.NotADirectory: ("/problems/not-a-directory", "Not a directory", 409),
    driver_errors.NotARegularFile: ("/problems/not-a-regular-file", "Not a regular file", 409),
    driver_errors.PathExists: ("/problems/path-exists", "Path exists", 409),
    driver_errors.PreconditionMismatch: (
        PreconditionFailed.problem_type,
        PreconditionFailed.title,
        412,
    ),
    driver_errors.DirectoryNotEmpty: (
        "/problems/directory-not-empty",
        "Directory not empty",
        409,
    ),
    driver_errors.InvalidMove: ("/problems/invalid-move", "Invalid move", 400),
    driver_errors.FileChanged: ("/problems/file-changed", "File changed while read", 409),
    driver_errors.InvalidSnapshotName: (
        "/problems/invalid-snapshot-name",
        "Invalid snapshot name",
        400,
    ),
    driver_errors.SnapshotNotFound: ("/problems/snapshot-not-found", "Snapshot not found", 404),
}


def driver_problem(exc: driver_errors.DriverError) -> tuple[str, str, int]:
    for cls in type(exc).__mro__:
        if cls in DRIVER_PROBLEMS:
            return DRIVER_PROBLEMS[cls]
    return DRIVER_PROBLEMS[driver_errors.DriverError]


# Problems the web layer raises itself, outside any domain error.
VALIDATION_PROBLEM = ("/problems/validation", "Request validation failed", 422)
INTERNAL_PROBLEM = (DomainError.problem_type, DomainError.title, DomainError.status)
HTTP_STATUS_PROBLEMS: dict[int, tuple[str, str]] = {
    404: ("/problems/not-found", "Not found"),
    405: ("/problems/method-not-allowed", "Method not allowed"),
    406: ("/problems/not-acceptable", "Not acceptable"),
    413: ("/problems/content-too-large", "Content too large"),
    415: ("/problems/unsupported-media-type", "Unsupported media type"),
    # Answered by the connection itself (app.http_protocol), before any application code.
    408: ("/problems/request-timeout", "The request did not arrive in time"),
    414: ("/problems/uri-too-long", "URI too long"),
    431: ("/problems/request-header-fields-too-large", "Request header fields too large"),
}
MALFORMED_REQUEST_PROBLEM = ("/problems/malformed-request", "Malformed HTTP request")
