"""A job keeps the variant set it was claimed with: a reload (SIGHUP) that changes a folder's
variants applies to the jobs claimed after it, never to a job already under way."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

from bgcut_watchd.config import load_config
from bgcut_watchd.config.model import variant_key
from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_valid_jpeg
from tests.support import (
    DaemonProcess,
    all_requests,
    drop_images,
    files_under,
    job_dirs,
    visible_files,
    wait_for,
    wait_for_log,
    write_config,
)


def _ledger_keys(state_dir: Path) -> dict[str, str]:
    with sqlite3.connect(state_dir / "ledger.sqlite3") as conn:
        return dict(conn.execute("SELECT input_name, variant_key FROM jobs").fetchall())


def test_a_reload_changing_the_variants_applies_to_new_jobs_only(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    emulator.update(fail_truncate=1.0)  # every download breaks off: the jobs keep retrying
    daemon_keys, retry_keys = {"stability_s": 0.1}, {"max_attempts": 100}
    config = write_config(tmp_path, emulator.base_url, daemon=daemon_keys, retry=retry_keys)
    three = variant_key(load_config(config).folders[0].variants)
    root = tmp_path / "studio"
    drop_images(root / "inbox", 2)
    with DaemonProcess(config) as daemon:
        assert daemon.proc is not None
        wait_for(lambda: len([r for r in emulator.requests() if r.fault == "truncate"]) >= 6,
                 what="downloads retried")
        write_config(tmp_path, emulator.base_url, daemon=daemon_keys, retry=retry_keys,
                     variant_names=("full", "thumb"))
        daemon.proc.send_signal(signal.SIGHUP)
        wait_for_log(daemon, "configuration reloaded")
        emulator.update(fail_truncate=0.0)
        wait_for(lambda: len(files_under(root / "archive")) == 2 and not job_dirs(root / "inbox"),
                 what="both jobs finished")
        make_valid_jpeg(root / "inbox", "after.jpg", size=(90, 70))
        wait_for(lambda: len(files_under(root / "archive")) == 3, what="the new file archived")
        assert daemon.terminate() == 0
    two = variant_key(load_config(config).folders[0].variants)
    assert files_under(root / "quarantine") == []
    names = sorted(p.name for p in visible_files(root / "outbox"))
    assert names == sorted([f"pic-{n}.{s}" for n in range(2)
                            for s in ("full.png", "thumb.webp", "white.jpg")]
                           + ["after.full.png", "after.thumb.webp"])
    assert len([r for r in all_requests(emulator) if r.endpoint == "process"]) == 3
    assert _ledger_keys(tmp_path / "state") == {"pic-0.jpg": three, "pic-1.jpg": three,
                                                "after.jpg": two}
