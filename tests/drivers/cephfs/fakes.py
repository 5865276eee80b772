"""A dict-backed stand-in for CephFS's virtual attributes on an ordinary filesystem: quotas
kept per directory, ``ceph.dir.rbytes`` / ``rfiles`` / ``rentries`` computed from the tree
as the MDS would (``rentries`` counting the directory itself), ENODATA for what is unset,
and any raw value a test plants (garbage, negative numbers)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from drivers.cephfs import QUOTA_XATTR


class FakeCephXattrs:
    def __init__(self) -> None:
        self.values: dict[tuple[Path, str], bytes] = {}
        self.calls: list[tuple[str, Path, str]] = []

    def get(self, path: Path, name: str) -> bytes:
        self.calls.append(("get", path, name))
        if not os.path.lexists(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        if (path, name) in self.values:
            return self.values[(path, name)]
        if name.startswith("ceph.dir.r"):
            return str(self._rstat(path)[name.removeprefix("ceph.dir.")]).encode()
        raise OSError(errno.ENODATA, "No data available", str(path))

    def set(self, path: Path, name: str, value: bytes) -> None:
        self.calls.append(("set", path, name))
        if not os.path.lexists(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        if name != QUOTA_XATTR:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported", str(path))
        if not value.isdigit():  # CephFS refuses "-5" and "abc" alike
            raise OSError(errno.EINVAL, "Invalid argument", str(path))
        if int(value) == 0:
            if (path, name) not in self.values:
                raise OSError(errno.ENODATA, "No data available", str(path))
            del self.values[(path, name)]  # 0 removes the quota
            return
        self.values[(path, name)] = str(int(value)).encode()

    @staticmethod
    def _rstat(path: Path) -> dict[str, int]:
        rbytes = rfiles = 0
        rentries = 1  # the directory itself
        for parent, dirs, files in os.walk(path):
            rentries += len(dirs) + len(files)
            for name in files:
                st = (Path(parent) / name).lstat()
                rfiles += 1
                rbytes += st.st_size
        return {"rbytes": rbytes, "rfiles": rfiles, "rentries": rentries}
