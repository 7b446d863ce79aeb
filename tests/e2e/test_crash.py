"""``kill -9`` at random moments on a real daemon subprocess: the promises of product.md hold.

Nothing is lost (every input ends in exactly one place), nothing is half-written (every visible
output decodes, every set is complete, no ``-1`` sets), nothing is paid twice (a job whose
outputs were downloaded never calls the API again after a restart).
"""

from __future__ import annotations

import random
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_valid_jpeg
from tests.support import (
    DaemonProcess,
    InboxWriter,
    all_requests,
    api_calls_per_job,
    assert_outbox_complete_and_decodable,
    calls_after_full_download,
    disposed_inputs,
    files_under,
    job_dirs,
    journals,
    kill_at_random_moments,
    sha256_of,
    visible_files,
    wait_for,
    write_config,
)

SEED = 20261125
FILE_COUNT = 60
KILL_ROUNDS = 10


# -- the random kill -9 test --------------------------------------------------------------------

def test_kill_9_at_random_moments_loses_nothing_and_publishes_every_set_once(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    emulator.update(latency_process_s=0.05, latency_download_s=0.02, latency_upload_s=0.01)
    config = write_config(tmp_path, emulator.base_url,
                          daemon={"stability_s": 0.1, "shutdown_timeout_s": 5})
    root = tmp_path / "studio"
    inbox = root / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    started = time.monotonic()
    writer = InboxWriter(inbox, tmp_path / "staging", FILE_COUNT, SEED).start()

    kills = kill_at_random_moments(config, root, emulator, writer, rng, KILL_ROUNDS)
    writer.join()
    with DaemonProcess(config) as final:
        wait_for(lambda: len(disposed_inputs(root)) >= FILE_COUNT and not job_dirs(inbox)
                 and not visible_files(inbox), timeout_s=30, what="every input disposed")
        assert final.terminate(timeout_s=15) == 0
    elapsed_s = time.monotonic() - started

    assert len(set(writer.hashes.values())) == FILE_COUNT  # the inputs really are distinct
    placed = Counter(sha256_of(p) for p in disposed_inputs(root))
    assert placed == Counter(writer.hashes.values())  # each input in exactly one place
    assert files_under(root / "quarantine") == []  # valid images, no faults: none quarantined
    assert sorted(str(p.relative_to(root / "archive")) for p in files_under(root / "archive")) \
        == sorted(writer.hashes)
    assert visible_files(inbox) == [] and job_dirs(inbox) == []
    assert_outbox_complete_and_decodable(root / "outbox", sorted(writer.hashes))

    entries = emulator.requests()
    assert calls_after_full_download(entries) == []
    calls = api_calls_per_job(entries)
    assert len(calls) >= FILE_COUNT
    paid_twice = sorted(job for job, c in calls.items() if c["process"] > 1)
    uploaded_twice = sorted(job for job, c in calls.items() if c["upload"] > 1)
    print(f"\nkill -9: {KILL_ROUNDS} rounds: {kills}, "
          f"{len(entries)} requests, writer modes {dict(writer.modes)}, jobs processed "
          f"twice {len(paid_twice)}/{len(calls)}, uploaded twice (not charged) "
          f"{len(uploaded_twice)}/{len(calls)}, {elapsed_s:.1f}s")
    # A kill during a process call the server still completes is the one way to pay twice;
    # the restart looks for the outputs first, so only a call still running then pays again.
    assert len(paid_twice) <= 1, paid_twice


# -- a kill right after the downloads: the restart makes no API call at all ---------------------

def block_publishing(root: Path) -> Callable[[], None]:
    """A directory where the first output must go: publishing fails with a disk error."""
    blocker = root / "outbox" / "sub" / "shot.full.png"
    blocker.mkdir(parents=True)
    (blocker / "keep").write_bytes(b"x")
    return lambda: shutil.rmtree(blocker)


def block_archiving(root: Path) -> Callable[[], None]:
    """A file where the archive subfolder must go: disposal fails with a disk error."""
    blocker = root / "archive" / "sub"
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"x")
    return blocker.unlink


@pytest.mark.parametrize(("state", "block"), [("downloaded", block_publishing),
                                              ("published", block_archiving)])
def test_a_job_killed_after_its_downloads_resumes_without_any_api_call(
    tmp_path: Path, emulator: FakeApiServer, state: str,
    block: Callable[[Path], Callable[[], None]],
) -> None:
    emulator.update(latency_process_s=0.05, latency_download_s=0.02)
    config = write_config(tmp_path, emulator.base_url, folder={"on_conflict": "overwrite"})
    root = tmp_path / "studio"
    inbox = root / "inbox"
    (inbox / "sub").mkdir(parents=True)
    unblock = block(root)
    source_hash = sha256_of(make_valid_jpeg(inbox / "sub", "shot.jpg"))

    with DaemonProcess(config) as first:
        wait_for(lambda: [r["state"] for r in journals(inbox)] == [state], timeout_s=10,
                 what=f"the job journaled as {state}")
        first.kill9()
    calls_before = len(all_requests(emulator))
    assert [e.endpoint for e in emulator.requests()] == ["upload", "process"] + ["download"] * 3
    unblock()

    with DaemonProcess(config) as second:
        wait_for(lambda: len(files_under(root / "archive")) == 1 and not job_dirs(inbox),
                 timeout_s=10, what="the resumed job archived")
        assert second.terminate() == 0
    assert emulator.requests()[calls_before:] == []  # nothing uploaded, processed or fetched
    assert "1 unfinished job(s) resumed" in second.log_text()
    assert [sha256_of(p) for p in files_under(root / "archive")] == [source_hash]
    assert_outbox_complete_and_decodable(root / "outbox", ["sub/shot.jpg"])


# -- a kill while the outputs download: the process call's answer is not journaled yet ----------

def test_a_job_killed_while_its_outputs_download_pays_nothing_again(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    # The answer of the paid call is kept in memory and journaled with the job's next write
    # (one durable write fewer on the critical path): the journal still holds the "sent" mark
    # while the downloads run, and a restart's look-out finds the outputs instead of paying.
    emulator.update(latency_process_s=0.05, latency_download_s=30.0)
    config = write_config(tmp_path, emulator.base_url)
    root = tmp_path / "studio"
    inbox = root / "inbox"
    source_hash = sha256_of(make_valid_jpeg(inbox, "shot.jpg"))

    with DaemonProcess(config) as first:
        wait_for(lambda: "process" in [e.endpoint for e in emulator.requests()]
                 and emulator.requests_in_progress() >= 1,
                 timeout_s=10, what="the process call answered, the downloads under way")
        [record] = journals(inbox)
        assert (record["state"], bool(record["process_sent_at"])) == ("uploaded", True)
        assert record["remote_outputs"] == []  # kept, not journaled
        first.kill9()
    emulator.update(latency_download_s=0.02)
    calls_before = len(emulator.requests())

    with DaemonProcess(config) as second:
        wait_for(lambda: len(files_under(root / "archive")) == 1 and not job_dirs(inbox),
                 timeout_s=20, what="the resumed job archived")
        assert second.terminate() == 0
    after = [e.endpoint for e in emulator.requests()[calls_before:]]
    assert after and set(after) == {"download"}  # looked for and fetched, never paid again
    assert "outputs found, not paid again" in second.log_text()
    assert [sha256_of(p) for p in files_under(root / "archive")] == [source_hash]
    assert_outbox_complete_and_decodable(root / "outbox", ["shot.jpg"])
