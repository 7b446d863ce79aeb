"""Content already processed with the same variants is not paid for again (product.md
"Nothing is paid twice"), unless ``reprocess_duplicates`` says so or the outputs are gone.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from PIL import Image

from bgcut_watchd.fake_api import FakeApiServer
from tests.hostile import make_valid_jpeg
from tests.support import InProcessDaemon, files_under, wait_for, write_config

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
    inbox.mkdir(parents=True)
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
    (tmp_path / "studio" / "inbox").mkdir(parents=True)
    (other / "inbox").mkdir(parents=True)
    with InProcessDaemon(config):
        make_valid_jpeg(tmp_path / "studio" / "inbox", "same.jpg")
        wait_for(lambda: files_under(tmp_path / "studio" / "archive"), what="studio done")
        shutil.copyfile(tmp_path / "studio" / "archive" / "same.jpg", other / "inbox" / "same.jpg")
        wait_for(lambda: files_under(other / "archive"), what="web done")
    assert (_calls(emulator, "upload"), _calls(emulator, "process")) == (2, 2)
    assert [p.name for p in files_under(other / "outbox")] == ["same.thumb.webp"]
