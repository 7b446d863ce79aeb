"""Content already processed with the same variants is not paid for again (product.md
"Nothing is paid twice"), unless ``reprocess_duplicates`` says so or the outputs are gone or no
longer hold the bytes recorded; identical files dropped at once are paid for once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_valid_jpeg
from tests.support import (
    InProcessDaemon,
    disposed_inputs,
    files_under,
    visible_files,
    wait_for,
    write_config,
)

VARIANT_SUFFIXES = (".full.png", ".thumb.webp", ".white.jpg")


def _calls(emulator: FakeApiServer, endpoint: str) -> int:
    return sum(1 for r in emulator.requests() if r.endpoint == endpoint and r.status == 200)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _drop_twice(root: Path, emulator: FakeApiServer, *, delete_first_outputs: bool = False,
                cut_first_output: bool = False, **folder: object) -> Path:
    """``first.jpg`` processed, then the same bytes as ``second.jpg``; returns the outbox."""
    config = write_config(root, emulator.base_url, folder=dict(folder))
    inbox, outbox, archive = (root / "studio" / n for n in ("inbox", "outbox", "archive"))
    inbox.mkdir(parents=True, exist_ok=True)
    staging = root / "staging"
    staging.mkdir()
    original = make_valid_jpeg(staging, "original.jpg")
    with InProcessDaemon(config):
        shutil.copyfile(original, inbox / "first.jpg")
        wait_for(lambda: len(files_under(archive)) == 1, what="first input archived")
        if delete_first_outputs:
            (outbox / "first.thumb.webp").unlink()
        if cut_first_output:  # someone's tool cut it short since: not reusable
            data = (outbox / "first.white.jpg").read_bytes()
            (outbox / "first.white.jpg").write_bytes(data[: len(data) // 2])
        shutil.copyfile(original, inbox / "second.jpg")
        wait_for(lambda: len(files_under(archive)) == 2, what="second input archived")
    assert sorted(p.name for p in files_under(archive)) == ["first.jpg", "second.jpg"]
    assert _sha256(archive / "second.jpg") == _sha256(original)
    return outbox


def test_same_content_is_paid_once_and_its_outputs_copied(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    outbox = _drop_twice(tmp_path, emulator)
    assert (_calls(emulator, "upload"), _calls(emulator, "process"),
            _calls(emulator, "download")) == (1, 1, 3)
    assert sorted(p.name for p in files_under(outbox)) == sorted(
        [f"first{s}" for s in VARIANT_SUFFIXES] + [f"second{s}" for s in VARIANT_SUFFIXES])
    for suffix in VARIANT_SUFFIXES:
        first, second = outbox / f"first{suffix}", outbox / f"second{suffix}"
        assert _sha256(second) == _sha256(first)
        assert not second.samefile(first)  # a copy, not a link to the first output


def test_reprocess_duplicates_pays_again(tmp_path: Path, emulator: FakeApiServer) -> None:
    outbox = _drop_twice(tmp_path, emulator, reprocess_duplicates=True)
    assert (_calls(emulator, "upload"), _calls(emulator, "process")) == (2, 2)
    assert len(files_under(outbox)) == 6


def test_duplicate_is_paid_again_when_the_first_outputs_are_gone(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    outbox = _drop_twice(tmp_path, emulator, delete_first_outputs=True)
    assert (_calls(emulator, "upload"), _calls(emulator, "process")) == (2, 2)
    assert sorted(p.name for p in files_under(outbox)) == sorted(
        ["first.full.png", "first.white.jpg"] + [f"second{s}" for s in VARIANT_SUFFIXES])


def test_duplicate_is_paid_again_when_a_first_output_no_longer_verifies(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    outbox = _drop_twice(tmp_path, emulator, cut_first_output=True)
    assert (_calls(emulator, "upload"), _calls(emulator, "process")) == (2, 2)
    for suffix in VARIANT_SUFFIXES:
        with Image.open(outbox / f"second{suffix}") as image:
            image.load()  # whole: the cut copy was never kept
    assert [p.name for p in files_under(outbox) if p.name.startswith(".")] == []


def test_the_same_content_under_other_variants_is_processed(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    """Two folders with different variant sets: a duplicate is per content AND variants."""
    config = write_config(tmp_path, emulator.base_url, folders=("studio",))
    text = config.read_text()
    other = tmp_path / "web"
    text += (f'\n[[folders]]\nname = "web"\ninbox = "{other / "inbox"}"\n'
             f'outbox = "{other / "outbox"}"\nquarantine = "{other / "quarantine"}"\n'
             f'archive = "{other / "archive"}"\nvariants = ["thumb"]\n')
    config.write_text(text)
    (tmp_path / "studio" / "inbox").mkdir(parents=True, exist_ok=True)
    (other / "inbox").mkdir(parents=True, exist_ok=True)
    with InProcessDaemon(config):
        make_valid_jpeg(tmp_path / "studio" / "inbox", "same.jpg")
        wait_for(lambda: files_under(tmp_path / "studio" / "archive"), what="studio done")
        shutil.copyfile(tmp_path / "studio" / "archive" / "same.jpg", other / "inbox" / "same.jpg")
        wait_for(lambda: files_under(other / "archive"), what="web done")
    assert (_calls(emulator, "upload"), _calls(emulator, "process")) == (2, 2)
    assert [p.name for p in files_under(other / "outbox")] == ["same.thumb.webp"]


def _folders(root: Path) -> tuple[Path, Path, Path]:
    """The studio's inbox (made), outbox and archive; and ``root/staging`` (made)."""
    inbox, outbox, archive = (root / "studio" / n for n in ("inbox", "outbox", "archive"))
    inbox.mkdir(parents=True, exist_ok=True)
    (root / "staging").mkdir()
    return inbox, outbox, archive


def test_a_duplicate_is_never_served_from_names_another_image_took_over(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    """Issue 9, finding 3: A processed; the shop's importer moves A's outputs away; B, another
    image under A's name, is published under the freed names; A arrives again under another
    name. Its outputs used to be copies of B's, with no API call: now A is paid for again."""
    config = write_config(tmp_path, emulator.base_url)
    inbox, outbox, archive = _folders(tmp_path)
    image_a = make_valid_jpeg(tmp_path / "staging", "a.jpg")
    image_b = make_valid_jpeg(tmp_path / "staging", "b.jpg")
    assert _sha256(image_a) != _sha256(image_b)
    imported = tmp_path / "shop-import"
    imported.mkdir()
    with InProcessDaemon(config):
        shutil.copyfile(image_a, inbox / "photo.jpg")
        wait_for(lambda: len(files_under(archive)) == 1, what="A archived")
        for output in visible_files(outbox):  # the importer takes A's outputs
            output.rename(imported / output.name)
        shutil.copyfile(image_b, inbox / "photo.jpg")
        wait_for(lambda: len(files_under(archive)) == 2, what="B archived")
        shutil.copyfile(image_a, inbox / "again.jpg")
        wait_for(lambda: len(files_under(archive)) == 3, what="A again archived")
    assert (_calls(emulator, "upload"), _calls(emulator, "process")) == (3, 3)
    for suffix in VARIANT_SUFFIXES:
        again = _sha256(outbox / f"again{suffix}")
        assert again != _sha256(outbox / f"photo{suffix}")  # not B's bytes
        assert again == _sha256(imported / f"photo{suffix}")  # A's cut-out, made afresh


def _drop_at_once(staging: Path, inbox: Path, original: Path, count: int) -> None:
    """``count`` copies of ``original`` renamed into ``inbox`` one right after the other."""
    for n in range(count):
        shutil.copyfile(original, staging / f"copy-{n}.jpg")
    for n in range(count):
        os.rename(staging / f"copy-{n}.jpg", inbox / f"copy-{n}.jpg")


def _paid_outputs(emulator: FakeApiServer) -> dict[str, str]:
    """The sha256 of each output the emulator rendered and the daemon downloaded, by suffix."""
    downloads = [r for r in emulator.requests() if r.endpoint == "download" and r.status == 200]
    paths = {r.file_path for r in downloads if r.file_path is not None}
    # A remote output is ".../out/<index>-<variant>.<ext>": its suffix here is ".<variant>.<ext>".
    return {"." + p.rsplit("/", 1)[-1].split("-", 1)[-1]: _sha256(emulator.local_path(p))
            for p in paths}


def _assert_every_set_is_the_paid_one(emulator: FakeApiServer, outbox: Path,
                                      stems: list[str]) -> None:
    paid = _paid_outputs(emulator)
    assert sorted(p.name for p in visible_files(outbox)) == sorted(
        f"{stem}{s}" for stem in stems for s in VARIANT_SUFFIXES)
    for stem in stems:
        assert {s: _sha256(outbox / f"{stem}{s}") for s in VARIANT_SUFFIXES} == paid


def test_four_identical_copies_dropped_at_once_are_paid_once(
    tmp_path: Path, emulator: FakeApiServer,
) -> None:
    """Issue 9, finding 9: four copies dropped at once made 4 uploads and 4 process calls.
    The first to start pays; the others wait (outside the worker pool) and copy its outputs."""
    emulator.update(latency_process_s=1.5)
    config = write_config(tmp_path, emulator.base_url, daemon={"workers": 4})
    inbox, outbox, archive = _folders(tmp_path)
    original = make_valid_jpeg(tmp_path / "staging", "original.jpg")
    with InProcessDaemon(config):
        _drop_at_once(tmp_path / "staging", inbox, original, 4)
        wait_for(lambda: len(files_under(archive)) == 4, timeout_s=30, what="4 copies archived")
    assert (_calls(emulator, "upload"), _calls(emulator, "process"),
            _calls(emulator, "download")) == (1, 1, 3)
    _assert_every_set_is_the_paid_one(emulator, outbox, [f"copy-{n}" for n in range(4)])


# With fail_5xx = 0.1, seed 114 fails the first API request and none of the next 29
# (fake_api.faults: every request draws the same numbers, whatever its endpoint).
FIRST_REQUEST_FAILS_SEED = 114


@pytest.mark.parametrize("max_attempts", [1, 6], ids=["first-quarantined", "first-retrying"])
def test_when_the_first_copy_fails_one_waiting_copy_pays(
    tmp_path: Path, emulator: FakeApiServer, max_attempts: int,
) -> None:
    """The copy paying for the content fails (a 503 on its upload): it lets go, one of the
    waiting copies (or its own retry) pays once, and every other copy reuses those outputs."""
    emulator.update(seed=FIRST_REQUEST_FAILS_SEED, fail_5xx=0.1, latency_upload_s=0.5,
                    latency_process_s=0.5)
    config = write_config(tmp_path, emulator.base_url, daemon={"workers": 4},
                          retry={"max_attempts": max_attempts})
    inbox, outbox, _ = _folders(tmp_path)
    original = make_valid_jpeg(tmp_path / "staging", "original.jpg")
    with InProcessDaemon(config):
        _drop_at_once(tmp_path / "staging", inbox, original, 4)
        wait_for(lambda: len(disposed_inputs(tmp_path / "studio")) == 4, timeout_s=30,
                 what="4 copies archived or quarantined")
    failed = [r for r in emulator.requests() if r.status != 200]
    assert [(r.endpoint, r.fault) for r in failed] == [("upload", "5xx")]
    assert (_calls(emulator, "upload"), _calls(emulator, "process")) == (1, 1)
    quarantined = [p.name for p in files_under(tmp_path / "studio" / "quarantine")
                   if not p.name.endswith(".error.json")]
    assert len(quarantined) == (1 if max_attempts == 1 else 0)
    done = sorted({p.name.split(".")[0] for p in visible_files(outbox)})
    assert len(done) == 4 - len(quarantined)
    _assert_every_set_is_the_paid_one(emulator, outbox, done)
