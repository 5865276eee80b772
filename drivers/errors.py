"""Errors a driver raises. The services layer maps them to domain errors; drivers know nothing
of HTTP."""


class DriverError(Exception):
    """Base of every driver failure."""


class BackendUnavailable(DriverError):
    """The backend cannot be reached or refuses to work (I/O error, read-only, offline)."""


class BackendCommandFailed(BackendUnavailable):
    """A tool the driver manages the backend with (``xfs_quota``…) could not be started, timed
    out, exited non-zero or printed what the driver cannot read. The message names the tool
    and its complaint; ``argv`` and ``stderr`` keep the whole story for the logs."""

    def __init__(
        self,
        message: str,
        *,
        argv: tuple[str, ...] = (),
        returncode: int | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__(message)
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


class BackendApiError(BackendUnavailable):
    """A storage system's management API answered with an error, or with a body the driver
    cannot read. The vendor's own message is kept, with the HTTP status and the vendor's
    error code when it gave one."""

    def __init__(
        self, message: str, *, status: int | None = None, vendor_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.vendor_code = vendor_code


class BackendObjectNotFound(BackendApiError):
    """The management API has no such object (a quota, a snapshot, a job) any more."""


class BackendQuotaExceeded(DriverError):
    """The storage system refused a write or a limit because a quota would be exceeded."""


class StorageFull(DriverError):
    """The volume has no room left for a write (``ENOSPC``)."""


class VFolderDirectoryMissing(DriverError):
    """The vfolder's directory does not exist on the volume."""


class UnknownDriver(DriverError):
    """No driver is registered under the configured name."""


class InvalidDriverOptions(DriverError):
    """The volume's options name one the driver does not take, or a value it cannot use."""


class UnsafePath(DriverError):
    """A client-supplied path that could leave the vfolder or cannot name a file safely."""


class SymlinkNotFollowed(DriverError):
    """The path goes through, or ends at, a symlink; the proxy never follows one."""


class PathNotFound(DriverError):
    """Nothing exists at the path (or a parent directory is missing)."""


class NotADirectory(DriverError):
    """A directory was needed (listing, a parent component) but something else is there."""


class NotARegularFile(DriverError):
    """A regular file was needed (download) but a directory or a special file is there."""


class PathExists(DriverError):
    """The destination exists and the operation was asked not to replace it."""


class PreconditionMismatch(PathExists):
    """The file at the path is not the version the client named (If-Match)."""


class DirectoryNotEmpty(DriverError):
    """A directory has entries and the operation was not recursive."""


class InvalidMove(DriverError):
    """A move that cannot be done: into itself, onto the root, directory over file…"""


class FileChanged(DriverError):
    """The file changed while it was being read; the data read so far is inconsistent."""


class InvalidSnapshotName(DriverError):
    """A snapshot name the backend does not allow (it would not name one snapshot safely)."""


class SnapshotNotFound(PathNotFound):
    """The vfolder has no snapshot of that name."""
