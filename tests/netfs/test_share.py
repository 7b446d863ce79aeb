"""The fixture itself: a real sshfs share, recognised as a network folder, whose client caches
hide the server side's writes for a while (what makes the network-folder tests meaningful)."""

from __future__ import annotations

import os

from bgcut_watchd.intake.fstype import choose_watch_mode, filesystem_type, is_network_folder
from bgcut_watchd.intake.stability import revalidated_stat
from tests.netfs.sshfs import Share
from tests.support import poll_until


def test_the_share_is_fuse_sshfs_and_auto_polls_it(share: Share) -> None:
    assert filesystem_type(share.client) == "fuse.sshfs"
    assert choose_watch_mode(share.client, "auto") == "polling"
    assert is_network_folder(share.client) and not is_network_folder(share.server)


def test_the_client_caches_hide_a_server_side_append(share: Share) -> None:
    (share.server / "grows.bin").write_bytes(b"a" * 100)
    client_file = share.client / "grows.bin"
    assert os.lstat(client_file).st_size == 100  # the cache holds this now (20 s by default)
    with (share.server / "grows.bin").open("ab") as stream:
        stream.write(b"b" * 900)
    assert os.lstat(client_file).st_size == 100  # the client still answers the old size...
    assert len(client_file.read_bytes()) == 100  # ...and a read through it stops there


def test_without_the_directory_cache_a_new_file_is_listed_at_once(share_nocache: Share) -> None:
    assert os.listdir(share_nocache.client) == []
    (share_nocache.server / "new.bin").write_bytes(b"x")
    assert os.listdir(share_nocache.client) == ["new.bin"]


def test_an_open_refreshes_what_the_client_cached(share: Share) -> None:
    """What the coordinator's last look relies on: lstat alone stays stale for the cache's
    lifetime (20 s), a look through an open sees the append once the kernel's own 1 s
    attribute cache has expired."""
    (share.server / "grows.bin").write_bytes(b"a" * 100)
    client_file = share.client / "grows.bin"
    assert os.lstat(client_file).st_size == 100
    with (share.server / "grows.bin").open("ab") as stream:
        stream.write(b"b" * 900)
    assert not poll_until(lambda: os.lstat(client_file).st_size == 1000, timeout_s=3.0)
    assert poll_until(lambda: revalidated_stat(client_file).st_size == 1000, timeout_s=3.0)
