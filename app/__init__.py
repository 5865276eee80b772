"""storage-proxy: one HTTP API over many storage backends."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("storage-proxy")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
