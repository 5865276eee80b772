"""Errors a driver raises. The services layer maps them to domain errors; drivers know nothing
of HTTP."""


class DriverError(Exception):
    """Base of every driver failure."""


class BackendUnavailable(DriverError):
    """The backend cannot be reached or refuses to work (I/O error, read-only, offline)."""


class VFolderDirectoryMissing(DriverError):
    """The vfolder's directory does not exist on the volume."""


class UnknownDriver(DriverError):
    """No driver is registered under the configured name."""
