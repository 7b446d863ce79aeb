"""The fixture itself: a real sshfs share, recognised as a network folder, whose client caches
hide the server side's writes for a while (what makes the network-folder tests meaningful)."""

from __future__ import annotations

import os

from bgcut_watchd.intake.fstype import choose_watch_mode, filesystem_type
from tests.netfs.sshfs import Share


def test_the_share_is_fuse_sshfs_and_auto_polls_it(share: Share) -> None:
    assert filesystem_type(share.client) == "fuse.sshfs"
    assert choose_watch_mode(share.client, "auto") == "polling"


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
