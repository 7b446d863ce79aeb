"""The daemon on a real network share (finding 15): files written on the *server* side, in
chunks with pauses shorter than ``stability_s``, are taken only when whole, whatever the
client's caches said meanwhile; outputs, archive and quarantine live on the share too, and no
job leaves its work-area folder (or a ``.fuse_hidden*`` placeholder) behind.

Slow on purpose: the default sshfs caches hide a server-side write for up to ~22 s, so the
default ``network_settle_s`` (30 s) is what a file waits on such a share.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.job.workarea import WORK_DIR_NAME
from tests.hostile import encode, subject_image
from tests.netfs.sshfs import Share, SshServer, mounted
from tests.support import (
    InProcessDaemon,
    files_under,
    journals,
    visible_files,
    wait_for,
    write_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

OUTPUT_SUFFIXES = (".full.png", ".thumb.webp", ".white.jpg")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _uploaded(emulator: FakeApiServer) -> list[str]:
    """sha256 of what the emulator stored for each successful upload, in order."""
    return [_sha256(emulator.local_path(r.file_path).read_bytes()) for r in emulator.requests()
            if r.endpoint == "upload" and r.status == 200 and r.file_path]


def _image(name: str) -> bytes:
    return encode(subject_image((640, 480), name), "JPEG")


def _chunks(data: bytes, count: int) -> list[bytes]:
    size = len(data) // count + 1
    return [data[i:i + size] for i in range(0, len(data), size)]


def _config(share: Share, tmp_path: Path, emulator: FakeApiServer, *,
            stability_s: float, folder: dict[str, Any] | None = None,
            retry: dict[str, Any] | None = None) -> Path:
    """One folder whose inbox, outbox, archive and quarantine are on the share; the state
    (the ledger's SQLite) stays local, as an administrator would put it."""
    (share.server / "studio" / "inbox").mkdir(parents=True, exist_ok=True)
    return write_config(share.client, emulator.base_url,
                        daemon={"stability_s": stability_s, "state_dir": str(tmp_path / "state")},
                        folder={"poll_interval_s": 0.5, **(folder or {})}, retry=retry)


def _assert_done_whole_and_clean(share: Share, emulator: FakeApiServer, data: bytes) -> None:
    studio = share.server / "studio"
    assert files_under(studio / "quarantine") == []
    assert _uploaded(emulator) == [_sha256(data)]  # one upload, of the whole file
    assert (studio / "archive" / "photo.jpg").read_bytes() == data
    assert sorted(p.name for p in visible_files(studio / "outbox")) == sorted(
        "photo" + suffix for suffix in OUTPUT_SUFFIXES)
    work = studio / "inbox" / WORK_DIR_NAME
    wait_for(lambda: list(work.iterdir()) == [], timeout_s=5, what="the job dir to go")
    assert list(share.server.rglob(".fuse_hidden*")) == []


class ServerSideWriter:
    """Another machine writing ``photo.jpg`` into the share: chunk, pause, chunk... through one
    open file on the server side. The pauses are the scenario, not a wait."""

    def __init__(self, target: Path, chunks: list[bytes], pause_s: float) -> None:
        self.target = target
        self.chunks = chunks
        self.pause_s = pause_s
        self.started = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True, name="share-writer")

    def _write(self) -> None:
        with self.target.open("wb") as stream:
            for index, chunk in enumerate(self.chunks):
                if index:
                    time.sleep(self.pause_s)
                stream.write(chunk)
                stream.flush()
                self.started.set()

    @contextlib.contextmanager
    def running(self) -> Iterator[ServerSideWriter]:
        self._thread.start()
        try:
            yield self
        finally:
            self._thread.join(timeout=60)


def test_a_file_written_server_side_in_chunks_is_taken_whole(
        share: Share, tmp_path: Path, emulator: FakeApiServer) -> None:
    """Default sshfs caches, default network_settle_s: the attribute cache answered the old
    size for up to 21 s, so a 2 s quiet period took the file mid-write (invalid_image)."""
    stability_s = 2.0
    config = _config(share, tmp_path, emulator, stability_s=stability_s)
    data = _image("photo")
    writer = ServerSideWriter(share.server / "studio" / "inbox" / "photo.jpg",
                              _chunks(data, 8), pause_s=0.75 * stability_s)
    with writer.running():
        # The daemon's first look lists the file at once (a fresh mount caches nothing yet)
        # and sees its first chunk; the client then keeps answering that size for a while.
        assert writer.started.wait(10)
        with InProcessDaemon(config):
            wait_for(lambda: files_under(share.server / "studio" / "archive")
                     or files_under(share.server / "studio" / "quarantine"),
                     timeout_s=150, what="the input archived (or quarantined)")
    _assert_done_whole_and_clean(share, emulator, data)


def test_with_the_client_directory_cache_off(
        ssh_server: SshServer, tmp_path: Path, emulator: FakeApiServer) -> None:
    """``dir_cache=no`` lists a new file at once, but the kernel still caches attributes for
    1 s: a quiet period of stability_s alone took the file earlier still. A network_settle_s
    fitted to the shorter cache (3 s) is enough."""
    stability_s = 1.0
    with mounted(ssh_server, tmp_path / "server", tmp_path / "client",
                 ("dir_cache=no",)) as share:
        config = _config(share, tmp_path, emulator, stability_s=stability_s,
                         folder={"network_settle_s": 3})
        data = _image("photo")
        writer = ServerSideWriter(share.server / "studio" / "inbox" / "photo.jpg",
                                  _chunks(data, 10), pause_s=0.9 * stability_s)
        with InProcessDaemon(config), writer.running():
            wait_for(lambda: files_under(share.server / "studio" / "archive")
                     or files_under(share.server / "studio" / "quarantine"),
                     timeout_s=60, what="the input archived (or quarantined)")
        _assert_done_whole_and_clean(share, emulator, data)


def test_a_truncated_file_on_a_share_is_checked_again_after_settling(
        ssh_server: SshServer, tmp_path: Path, emulator: FakeApiServer) -> None:
    """A writer that stalls longer than the quiet period: the local check finds the claimed
    file truncated. On a share that is not yet the input's fault: it is checked once more
    after another settling period, by which time the writer has finished."""
    with mounted(ssh_server, tmp_path / "server", tmp_path / "client",
                 ("dcache_timeout=1",)) as share:
        config = _config(share, tmp_path, emulator, stability_s=0.5,
                         folder={"network_settle_s": 4}, retry={"max_delay_s": 30})
        inbox = share.server / "studio" / "inbox"
        data = _image("photo")
        with InProcessDaemon(config), (inbox / "photo.jpg").open("wb") as stream:
            stream.write(data[: len(data) // 2])
            stream.flush()
            # The writer stalls until the daemon has claimed the half file and found it
            # truncated (or, without the mechanism, quarantined it).
            wait_for(lambda: any(j.get("extra_settle_used") for j in journals(inbox))
                     or files_under(share.server / "studio" / "quarantine"),
                     timeout_s=30, what="the truncated verdict")
            stream.write(data[len(data) // 2:])
            stream.close()
            wait_for(lambda: files_under(share.server / "studio" / "archive")
                     or files_under(share.server / "studio" / "quarantine"),
                     timeout_s=60, what="the input archived (or quarantined)")
        _assert_done_whole_and_clean(share, emulator, data)
