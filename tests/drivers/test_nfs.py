"""The ``nfs`` backend on a local directory (this kernel has no NFS client, reference §3.3):
the POSIX parts, and the mount information that tells an Agent how to mount a vfolder from
the NFS server, read from the driver and through ``GET /v1/vfolders/{id}/mount``."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from drivers.base import capabilities_of
from drivers.errors import BackendUnavailable, InvalidDriverOptions
from drivers.nfs import NfsExport, nfs_driver
from drivers.registry import build_driver
from drivers.types import VFolderOwner
from tests.support.app import bearer, client_with_volumes, user_token

OPTIONS = {"server": "nfs1.example.com", "export": "/export/vfroot"}
VFOLDER = uuid.UUID("d5fae63d-8d51-4c74-b357-65d8a3e82022")
SHARDED_TAIL = "d5/fa/d5fae63d8d514c74b35765d8a3e82022"


async def test_mount_info_says_how_to_mount_the_vfolder_from_the_server(tmp_path: Path) -> None:
    driver = nfs_driver(tmp_path / "vol", options=OPTIONS)
    await driver.initialize()
    await driver.create_vfolder(VFOLDER)
    info = await driver.mount_info(VFOLDER)
    assert info.backend == "nfs" and info.host_path == driver.vfolder_path(VFOLDER)
    assert info.extra == {
        "fstype": "nfs4",
        "source": f"nfs1.example.com:/export/vfroot/{SHARDED_TAIL}",
        "server": "nfs1.example.com",
        "export": "/export/vfroot",
        "path": f"/export/vfroot/{SHARDED_TAIL}",
        "nfs_version": "4.1",
        "options": "vers=4.1",
    }


async def test_a_volume_below_the_mount_point_maps_to_its_remote_path(tmp_path: Path) -> None:
    """The export is mounted at /mnt/nfs here, and the volume is a directory in it."""
    driver = build_driver(
        "nfs",
        root=tmp_path / "nfs" / "team-a",
        options={
            **OPTIONS,
            "mount_point": str(tmp_path / "nfs"),
            "nfs_version": "3",
            "nfs_mount_options": ["hard", "nconnect=4", "proto=tcp"],
            "mount_options": ["rw"],
        },
    )
    await driver.initialize()
    await driver.create_vfolder(VFOLDER)
    info = await driver.mount_info(VFOLDER)
    assert info.mount_options == ("rw",)
    assert info.extra["fstype"] == "nfs"
    assert info.extra["path"] == f"/export/vfroot/team-a/{SHARDED_TAIL}"
    assert info.extra["source"] == f"nfs1.example.com:/export/vfroot/team-a/{SHARDED_TAIL}"
    assert info.extra["options"] == "vers=3,hard,nconnect=4,proto=tcp"


async def test_backendai_layout_paths(tmp_path: Path) -> None:
    driver = nfs_driver(tmp_path / "vfroot", options={**OPTIONS, "layout": "backendai"})
    await driver.initialize()
    scope = uuid.UUID(int=1)
    await driver.create_vfolder(VFOLDER, owner=VFolderOwner("user", str(scope)))
    extra = (await driver.mount_info(VFOLDER)).extra
    assert extra["path"] == f"/export/vfroot/{scope.hex}/d5/fa/e63d8d514c74b35765d8a3e82022"


def test_ipv6_servers_are_bracketed_in_the_source(tmp_path: Path) -> None:
    export = NfsExport(server="fd00::10", export="/x", mount_point=tmp_path, nfs_version="4.2")
    assert export.mount_extra(tmp_path / "a")["source"] == "[fd00::10]:/x/a"
    assert export.mount_extra(tmp_path / "a")["server"] == "fd00::10"


def test_a_path_outside_the_mount_point_is_refused(tmp_path: Path) -> None:
    export = NfsExport(server="s", export="/x", mount_point=tmp_path / "m", nfs_version="4")
    with pytest.raises(BackendUnavailable, match="not under the NFS mount point"):
        export.mount_extra(tmp_path / "elsewhere")
    with pytest.raises(BackendUnavailable, match="not under mount point"):
        nfs_driver(tmp_path / "a", options={**OPTIONS, "mount_point": str(tmp_path / "b")})


def test_the_posix_parts_and_no_capabilities(tmp_path: Path) -> None:
    driver = nfs_driver(tmp_path, options=OPTIONS)
    assert capabilities_of(driver) == []
    assert driver.files.reserved_names == frozenset()  # staged in the volume's area


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"export": "/x"}, "server: Field required"),
        ({"server": "s"}, "export: Field required"),
        ({**OPTIONS, "export": "export/vfroot"}, "export: .*absolute"),
        ({**OPTIONS, "export": "/export/../etc"}, r"export: .*'\.\.'"),
        ({**OPTIONS, "server": "nfs1 nfs2"}, "server: "),
        ({**OPTIONS, "server": "nfs1:/x"}, "server: "),
        ({**OPTIONS, "nfs_version": "2"}, "nfs_version"),
        ({**OPTIONS, "nfs_mount_options": ["hard,intr"]}, "not one mount option"),
        ({**OPTIONS, "nfs_mount_options": ["vers=3"]}, "nfs_version"),
        ({**OPTIONS, "nfs_server": "s"}, "no option 'nfs_server'"),
    ],
)
def test_bad_options_are_refused(
    tmp_path: Path, options: dict[str, object], complaint: str
) -> None:
    with pytest.raises(InvalidDriverOptions, match=complaint):
        build_driver("nfs", root=tmp_path, options=options)


async def test_the_mount_endpoint_hands_the_nfs_details_to_agents(tmp_path: Path) -> None:
    volume = tmp_path / "nfs-volume"
    volumes = (
        '[volumes.shared]\ndriver = "nfs"\n'
        f'path = "{volume}"\n'
        "[volumes.shared.options]\n"
        'server = "10.0.0.5"\nexport = "/srv/nfs/shared"\nnfs_version = "4.2"\n'
        'nfs_mount_options = ["hard"]\n'
    )
    alice = bearer(user_token("alice"))
    async with client_with_volumes(tmp_path, volumes) as (client, _settings):
        made = await client.post(
            "/v1/vfolders", json={"name": "data", "volume": "shared"}, headers=alice
        )
        assert made.status_code == 201, made.text
        hex_id = uuid.UUID(made.json()["id"]).hex
        mount = await client.get(f"/v1/vfolders/{made.json()['id']}/mount", headers=alice)
    assert mount.status_code == 200, mount.text
    body = mount.json()
    remote = f"/srv/nfs/shared/{hex_id[:2]}/{hex_id[2:4]}/{hex_id}"
    assert body["backend"] == "nfs" and body["volume"] == "shared"
    assert Path(body["host_path"]) == volume.resolve() / hex_id[:2] / hex_id[2:4] / hex_id
    assert body["extra"] == {
        "fstype": "nfs4",
        "source": f"10.0.0.5:{remote}",
        "server": "10.0.0.5",
        "export": "/srv/nfs/shared",
        "path": remote,
        "nfs_version": "4.2",
        "options": "vers=4.2,hard",
    }
