"""Filesystem type from mountinfo (escapes, longest match, overmounts) and the watch mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgcut_watchd.intake.fstype import (
    choose_watch_mode,
    filesystem_type,
    fstype_for,
    parse_mountinfo,
)

SAMPLE = (
    b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    b"30 22 0:40 / /srv/nas rw,relatime shared:5 - nfs4 server:/export rw,vers=4.2\n"
    b"31 30 0:41 / /srv/nas/local\\040disk rw - tmpfs tmpfs rw\n"
    b"32 22 0:42 / /mnt/my\\040share rw,nosuid - cifs //host/share rw\n"
    b"33 22 0:43 / /home/u/remote rw,nosuid,nodev - fuse.sshfs u@h:/ rw\n"
    b"34 22 0:44 / /srv/nas2 rw - ext4 /dev/sdb1 rw\n"
    b"35 22 0:45 / /srv/over rw - ext4 /dev/sdc1 rw\n"
    b"36 35 0:46 / /srv/over rw master:3 - nfs h:/x rw\n"
    b"37 22 0:47 / /srv/back\\134slash\\011tab rw - xfs /dev/sdd1 rw\n"
    b"38 22 0:48 / /srv/caf\\351 rw - 9p share rw\n"
    b"this line is garbage\n"
)


def test_parse_mountinfo_unescapes_and_skips_garbage() -> None:
    mounts = parse_mountinfo(SAMPLE)
    assert len(mounts) == 10
    points = [m.mount_point for m in mounts]
    assert "/srv/nas/local disk" in points
    assert "/srv/back\\slash\ttab" in points
    assert b"/srv/caf\xe9".decode("utf-8", "surrogateescape") in points


@pytest.mark.parametrize(
    ("path", "fstype"),
    [
        ("/etc/passwd", "ext4"),
        ("/", "ext4"),
        ("/srv/nas", "nfs4"),
        ("/srv/nas/photos/inbox", "nfs4"),
        ("/srv/nas2/inbox", "ext4"),  # a prefix of the string is not a parent folder
        ("/srv/nas/local disk/inbox", "tmpfs"),
        ("/mnt/my share/inbox", "cifs"),
        ("/home/u/remote/in", "fuse.sshfs"),
        ("/srv/over/in", "nfs"),  # the later (top) mount of two on one point wins
        ("/srv/back\\slash\ttab/in", "xfs"),
    ],
)
def test_fstype_for_longest_mount_point(path: str, fstype: str) -> None:
    assert fstype_for(path, parse_mountinfo(SAMPLE)) == fstype


def test_filesystem_type_reads_a_mountinfo_file(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_bytes(SAMPLE)
    assert filesystem_type(Path("/srv/nas/inbox"), mountinfo) == "nfs4"
    assert filesystem_type(Path("/srv/nas/inbox"), tmp_path / "missing") == "unknown"


def test_filesystem_type_on_this_machine(tmp_path: Path) -> None:
    fstype = filesystem_type(tmp_path)
    assert fstype != "unknown"
    assert " " not in fstype


@pytest.mark.parametrize(
    ("inbox", "mode"),
    [
        ("/srv/nas/in", "polling"),
        ("/mnt/my share/in", "polling"),
        ("/home/u/remote/in", "polling"),
        ("/srv/caf\udce9/in", "polling"),
        ("/srv/nas/local disk/in", "inotify"),
        ("/var/lib/in", "inotify"),
    ],
)
def test_auto_polls_network_and_fuse(tmp_path: Path, inbox: str, mode: str) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_bytes(SAMPLE)
    assert choose_watch_mode(Path(inbox), "auto", mountinfo) == mode


def test_explicit_modes_are_kept_and_others_refused(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_bytes(SAMPLE)
    assert choose_watch_mode(Path("/srv/nas/in"), "inotify", mountinfo) == "inotify"
    assert choose_watch_mode(Path("/var/in"), "polling", mountinfo) == "polling"
    with pytest.raises(ValueError, match="watch"):
        choose_watch_mode(Path("/var/in"), "fanotify", mountinfo)
