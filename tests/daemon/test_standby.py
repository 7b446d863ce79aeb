"""A folder on a share declared in fstab but not mounted waits on standby: nothing watched or
written, ``status`` says so; when the share is mounted (a real tmpfs mount here) the folder is
watched and its files processed, without a restart."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.mounts import MountTables
from tests.hostile import make_valid_jpeg
from tests.support import InProcessDaemon, files_under, wait_for, write_config


def _mount_tmpfs(point: Path) -> None:
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(point)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


def test_an_unmounted_share_is_on_standby_until_it_is_mounted(
        tmp_path: Path, emulator: FakeApiServer) -> None:
    if shutil.which("mount") is None:
        pytest.skip("mount is not installed")
    share = tmp_path / "share"
    share.mkdir()
    fstab = tmp_path / "fstab"
    fstab.write_text(f"tmpfs {share} tmpfs size=16m 0 0\n")
    tables = MountTables(fstab=fstab, units_dirs=(tmp_path / "no-units",))
    config = write_config(tmp_path, emulator.base_url, folders=("local",))
    text = config.read_text() + (
        '\n[[folders]]\nname = "shared"\n'
        f'inbox = "{share}/inbox"\noutbox = "{share}/out"\nquarantine = "{share}/q"\n'
        f'archive = "{share}/done"\nvariants = ["full", "thumb", "white"]\n')
    config.write_text(text)

    try:
        with InProcessDaemon(config, mount_tables=tables):
            status = tmp_path / "state" / "status.json"
            wait_for(lambda: status.exists() and json.loads(status.read_text())["folders"]
                     .get("shared", {}).get("watch") == "standby", what="standby reported")
            assert list(share.iterdir()) == []  # nothing written on the empty mount point
            make_valid_jpeg(tmp_path / "local" / "inbox", "a.jpg")  # the other folder works
            wait_for(lambda: files_under(tmp_path / "local" / "archive"), what="local file done")
            _mount_tmpfs(share)
            (share / "inbox").mkdir()
            make_valid_jpeg(share / "inbox", "b.jpg")
            wait_for(lambda: files_under(share / "done"), timeout_s=20,
                     what="the share's file processed once it is mounted")
            assert len(files_under(share / "out")) == 3
    finally:
        subprocess.run(["umount", "-l", str(share)], capture_output=True, check=False)


def test_the_mount_view_reads_the_tables_again_only_when_they_change(tmp_path: Path) -> None:
    """Issue 14: the service asks every second; the tables are parsed again only after a
    mount or unmount (the kernel's POLLPRI on mountinfo) or a change of fstab or the units."""
    if shutil.which("mount") is None:
        pytest.skip("mount is not installed")
    from bgcut_watchd.mounts import MountView

    fstab = tmp_path / "fstab"
    fstab.write_text("")
    view = MountView(MountTables(fstab=fstab, units_dirs=(tmp_path / "no-units",)))
    first = view.now()
    assert view.now() is first  # nothing changed: nothing read again
    point = tmp_path / "point"
    point.mkdir()
    _mount_tmpfs(point)
    try:
        mounted = view.now()
        assert str(point) in mounted.mounted and mounted is not first
        assert view.now() is mounted
    finally:
        subprocess.run(["umount", str(point)], check=True)
    assert str(point) not in view.now().mounted
    settled = view.now()
    fstab.write_text(f"tmpfs {point} tmpfs size=16m 0 0\n")
    assert view.now().declared == {str(point): str(fstab)}
    assert view.now() is not settled
