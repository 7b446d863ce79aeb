"""``bgcut-watchd explain``: the dry run for one path; no API call, nothing moved."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from bgcut_watchd.cli import main
from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.job import normalize
from tests.devices.corpus import (
    exif_bytes,
    heic_nclx_p3,
    heic_phone,
    jpeg_oriented,
    make_dng_shaped,
    tiff_three_pages,
)
from tests.hostile import make_text_named_jpg, make_valid_jpeg
from tests.support import API_KEY, files_under, write_config


@pytest.fixture(autouse=True)
def no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """explain needs no API key."""
    monkeypatch.delenv("BGCUT_API_KEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "studio" / "inbox"
    path.mkdir(parents=True)
    return path


def _explain(config: Path, path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["explain", "-c", str(config), str(path)])
    return code, capsys.readouterr().out


def test_an_ignored_name_names_its_rule(
    tmp_path: Path, emulator: FakeApiServer, inbox: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url, folder={"ignore": ["raw/*"]})
    partial = inbox / "photo.jpg.part"
    partial.write_bytes(b"half")
    (inbox / "raw").mkdir()
    raw = make_valid_jpeg(inbox / "raw", "x.jpg")

    code, out = _explain(config, partial, capsys)
    assert code == 1
    assert "ignored:     yes, by the built-in pattern '*.part'" in out
    code, out = _explain(config, raw, capsys)
    assert code == 1
    assert "ignored:     yes, by the ignore pattern 'raw/*'" in out
    assert partial.exists() and raw.exists()


def test_a_valid_image_shows_calls_and_outputs_without_calling_the_api(
    tmp_path: Path, emulator: FakeApiServer, inbox: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    (inbox / "sub").mkdir()
    image = make_valid_jpeg(inbox / "sub", "shot one.jpg")
    outbox = tmp_path / "studio" / "outbox" / "sub"
    outbox.mkdir(parents=True)
    (outbox / "shot one.thumb.webp").write_bytes(b"taken")  # the whole set moves to -1

    code, out = _explain(config, image, capsys)

    assert code == 0, out
    assert "folder:      studio (inbox " in out and "as 'sub/shot one.jpg'" in out
    assert "local check: OK: jpeg 64x48" in out
    assert '1. upload to "bgcut-watchd/<job id>" as "shot_one.jpg"' in out
    assert "2. process, one call with 3 variant(s):" in out
    assert ('thumb: {"output_file_path": "bgcut-watchd/<job id>/out/1-thumb.webp", '
            '"format": "webp", "max_resolution": 40000') in out
    assert "3. download, 3 call(s)" in out
    for name in ("shot one-1.full.png", "shot one-1.thumb.webp", "shot one-1.white.jpg"):
        assert f"'{name}'" in out
    assert f"moves to '{tmp_path / 'studio' / 'archive' / 'sub' / 'shot one.jpg'}'" in out
    assert emulator.requests() == []
    assert image.exists()
    assert not (tmp_path / "state" / "ledger.sqlite3").exists()  # nothing written
    assert API_KEY not in out


def test_a_text_file_named_jpg_would_be_quarantined(
    tmp_path: Path, emulator: FakeApiServer, inbox: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    notes = make_text_named_jpg(inbox)

    code, out = _explain(config, notes, capsys)

    assert code == 1
    assert "local check: rejected: invalid_image:" in out
    quarantined = tmp_path / "studio" / "quarantine" / "notes.jpg"
    assert f"quarantined, no API call: '{quarantined}' beside notes.jpg.error.json" in out
    assert "remote calls" not in out
    assert notes.exists() and files_under(tmp_path / "studio" / "quarantine") == []
    assert emulator.requests() == []


def test_a_path_outside_every_inbox_is_not_seen_by_the_daemon(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url, folders=("studio", "web"))
    (tmp_path / "elsewhere").mkdir()
    image = make_valid_jpeg(tmp_path / "elsewhere", "loose.jpg")

    code, out = _explain(config, image, capsys)

    assert code == 1
    assert "folder:      none: in no folder's inbox, the daemon never sees it" in out
    assert "`process --folder NAME PATH` (NAME one of studio, web)" in out
    assert emulator.requests() == []


def test_with_one_folder_the_plan_of_process_for_an_outside_file_is_shown(
    tmp_path: Path, emulator: FakeApiServer, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    (tmp_path / "elsewhere").mkdir()
    image = make_valid_jpeg(tmp_path / "elsewhere", "loose.jpg")
    code, out = _explain(config, image, capsys)
    assert code == 1
    assert "`process PATH` would copy it and leave the original where it is" in out
    assert "'loose.full.png'" in out  # what `process` would make of it
    assert "the copy is removed; the original stays where it is" in out
    assert emulator.requests() == []


@pytest.mark.parametrize(("where", "verdict"), [
    ("outbox", "already_output"), ("archive", "already_archived"),
    ("quarantine", "already_quarantined")])
def test_a_file_in_an_outbox_archive_or_quarantine_is_recognised(
    tmp_path: Path, inbox: Path, where: str, verdict: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")
    folder = tmp_path / "studio" / where
    folder.mkdir(parents=True)
    image = make_valid_jpeg(folder, "done.jpg")
    (folder / "done.jpg.error.json").write_text(
        '{"reason": "invalid_image", "stage": "validate", "detail": "not an image"}')
    assert main(["explain", "-c", str(config), str(image), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == verdict and doc["folder"] == "studio" and doc["exit_code"] == 1
    text = " ".join(step["text"] for step in doc["steps"])
    assert f"in its {where}" in text and "never takes files from there" in text
    assert "afterwards" not in [step["step"] for step in doc["steps"]]  # no "what next" plan
    if where == "quarantine":
        assert "invalid_image at validate: not an image" in text
        assert "bgcut-watchd requeue" in text


def test_a_duplicate_would_copy_earlier_outputs(
    tmp_path: Path, emulator: FakeApiServer, inbox: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    first = make_valid_jpeg(inbox, "first.jpg")
    data = first.read_bytes()
    with monkeypatch.context() as m:
        m.setenv("BGCUT_API_KEY", API_KEY)
        assert main(["process", "-c", str(config), str(first)]) == 0
    (inbox / "again.jpg").write_bytes(data)
    capsys.readouterr()
    calls_before = len(emulator.requests())

    code, out = _explain(config, inbox / "again.jpg", capsys)

    assert code == 0
    assert "duplicate:   yes: same content, same variants" in out
    assert f"'{tmp_path / 'studio' / 'outbox' / 'first.full.png'}'" in out
    assert "remote calls" not in out
    assert "'again.full.png'" in out
    assert len(emulator.requests()) == calls_before


def test_a_non_recursive_folder_does_not_take_subfolders(
    tmp_path: Path, emulator: FakeApiServer, inbox: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url, folder={"recursive": False})
    (inbox / "sub").mkdir()
    image = make_valid_jpeg(inbox / "sub", "x.jpg")
    code, out = _explain(config, image, capsys)
    assert code == 1
    assert "recursive = false" in out


def test_a_configuration_error_exits_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    broken = tmp_path / "config.toml"
    broken.write_text("[api]\nbase_url = 3\n", "utf-8")
    assert main(["explain", "-c", str(broken), str(tmp_path)]) == 78
    assert "api.base_url" in capsys.readouterr().err


# -- normalisation (issue 10) -------------------------------------------------------------------

def test_explain_says_what_normalisation_a_phone_heic_gets(
    tmp_path: Path, emulator: FakeApiServer, inbox: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    heic_phone(inbox)
    code, out = _explain(config, inbox / "IMG_1234.heic", capsys)
    assert code == 0, out
    assert "normalise:   HEIC → PNG, rotated 90°, Display P3 → sRGB" in out
    assert 'as "IMG_1234.png"' in out  # what the API receives
    assert "'IMG_1234.full.png'" in out


def test_explain_lists_every_page_of_a_multi_page_tiff(
    tmp_path: Path, emulator: FakeApiServer, inbox: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    tiff_three_pages(inbox)
    code, out = _explain(config, inbox / "letters.tif", capsys)
    assert code == 0, out
    assert "normalise:   TIFF → PNG, 3 pages → 3 jobs" in out
    assert "5 per page, 3 pages: 15 in all" in out
    for page in (1, 2, 3):
        assert f"'letters-p{page}.full.png'" in out


def test_an_accepted_upright_srgb_file_goes_byte_for_byte(
    tmp_path: Path, emulator: FakeApiServer, inbox: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    image = make_valid_jpeg(inbox, "plain.jpg")
    code, out = _explain(config, image, capsys)
    assert code == 0, out
    assert "normalise:   none: uploaded byte for byte" in out
    assert 'as "plain.jpg"' in out


@pytest.mark.parametrize(("raw_files", "code", "words"), [
    ("ignore", 1, "ignored:     camera RAW (Adobe DNG): left in the inbox, untouched"),
    ("quarantine", 1, "local check: rejected: camera_raw: a camera RAW file (Adobe DNG)"),
])
def test_camera_raw_follows_the_setting(
    tmp_path: Path, emulator: FakeApiServer, inbox: Path, capsys: pytest.CaptureFixture[str],
    raw_files: str, code: int, words: str,
) -> None:
    config = write_config(tmp_path, emulator.base_url, folder={"raw_files": raw_files})
    raw = make_dng_shaped(inbox)
    got, out = _explain(config, raw, capsys)
    assert (got, words in out) == (code, True), out


def test_both_render_modes_are_priced_and_local_asks_for_one_master(
    tmp_path: Path, emulator: FakeApiServer, inbox: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url, folder={"render": "local"})
    image = make_valid_jpeg(inbox, "shot.jpg")
    code, out = _explain(config, image, capsys)
    assert code == 0
    assert "2. process, one call with 1 variant(s):" in out
    assert '"output_file_path": "bgcut-watchd/<job id>/out/master.png"' in out
    assert "every variant (3) rendered here" in out
    assert 'render = "api": one call with 3 variant(s), about 1.50 credits' in out
    assert "3 variant(s) rendered here, about 0.50 credits" in out
    assert "upload:      the input as it is, byte for byte" in out
    assert emulator.requests() == []


# -- the upload line follows the normalisation plan (audit of issue 10) ------------------------

@pytest.mark.parametrize(("make", "name"), [(heic_phone, "IMG_1234.heic"),
                                            (tiff_three_pages, "letters.tif")])
def test_a_converted_file_is_never_said_to_go_byte_for_byte(
    tmp_path: Path, emulator: FakeApiServer, inbox: Path, capsys: pytest.CaptureFixture[str],
    make, name: str,  # type: ignore[no-untyped-def]
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    make(inbox)
    code, out = _explain(config, inbox / name, capsys)
    assert code == 0, out
    assert "byte for byte" not in out
    assert "upload:      converted: PNG (lossless), " in out


def test_a_converted_file_over_the_limit_shows_the_fallback_the_daemon_uses(
    tmp_path: Path, emulator: FakeApiServer, inbox: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A noisy rotated photo: its PNG is over ``max_input_bytes``, so the daemon sends JPEG
    quality 95 (4:4:4), and says so; explain must say the same, under the same name."""
    made = jpeg_oriented(6)(inbox)
    noise = Image.effect_noise((900, 600), 60).convert("RGB")
    noise.save(inbox / made.name, "JPEG", quality=80, exif=exif_bytes(6))
    upright = ImageOps.exif_transpose(Image.open(inbox / made.name))
    buffer = io.BytesIO()
    upright.save(buffer, "PNG", compress_level=normalize.PNG_COMPRESS_LEVEL)
    limit = len(buffer.getvalue()) - 1
    assert (inbox / made.name).stat().st_size < limit
    config = write_config(tmp_path, emulator.base_url, daemon={"max_input_bytes": limit})
    code, out = _explain(config, inbox / made.name, capsys)
    assert code == 0, out
    assert "normalise:   JPEG → JPEG, rotated 90°" in out
    assert "upload:      converted: JPEG quality 95, 4:4:4, " in out
    assert 'as "phone-o6.jpg"' in out


def test_explain_names_colours_declared_only_as_nclx(
    tmp_path: Path, emulator: FakeApiServer, inbox: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    heic_nclx_p3(inbox)
    code, out = _explain(config, inbox / "IMG_5678.heic", capsys)
    assert code == 0, out
    assert "normalise:   HEIC → PNG, Display P3 (nclx) → sRGB" in out


def test_an_accepted_file_scaled_down_is_not_said_to_go_byte_for_byte(
    tmp_path: Path, emulator: FakeApiServer, inbox: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    variants = '[variants.full]\nformat = "png"\nmax_resolution = 100000\n'
    config = write_config(tmp_path, emulator.base_url, variants=variants,
                          variant_names=("full",))
    Image.new("RGB", (800, 600), (10, 120, 200)).save(inbox / "wide.jpg", "JPEG")
    code, out = _explain(config, inbox / "wide.jpg", capsys)
    assert code == 0, out
    assert "byte for byte" not in out
    assert "normalise:   none: format, orientation and colours stay" in out
    assert "upload:      scaled down to 365x273 before the upload" in out
