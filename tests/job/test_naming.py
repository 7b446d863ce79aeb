"""Output, archive and quarantine names (pure naming logic: pyfakefs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyfakefs.fake_filesystem import FakeFilesystem

from bgcut_watchd.config import Variant
from bgcut_watchd.errors import LocalDiskError
from bgcut_watchd.job import naming

VARIANTS = (Variant("full"), Variant("thumb", format="webp"), Variant("white", format="jpeg"))
TEMPLATE = "{stem}.{variant}.{ext}"


def names_for(stem: str) -> list[str]:
    return naming.output_names(TEMPLATE, stem, VARIANTS, "studio")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photo.jpg", ("photo", ".jpg")),
        ("archive.tar.gz", ("archive.tar", ".gz")),
        ("noext", ("noext", "")),
        (".hidden", (".hidden", "")),
        ("..jpg", ("..jpg", "")),
        ("trailing.", ("trailing.", "")),
        ("-dash.png", ("-dash", ".png")),
        ("new\nline.jpg", ("new\nline", ".jpg")),
    ],
)
def test_split_name(name: str, expected: tuple[str, str]) -> None:
    assert naming.split_name(name) == expected


def test_output_names_fill_every_placeholder_in_variant_order() -> None:
    assert names_for("photo") == ["photo.full.png", "photo.thumb.webp", "photo.white.jpg"]
    assert naming.output_names("{folder}-{stem}_{variant}.{ext}", "-x", VARIANTS[:1], "f") == [
        "f--x_full.png"]


@pytest.mark.parametrize("template", ["{stem}.png", "{stem}/{variant}.{ext}", ""])
def test_output_names_rejects_colliding_or_invalid_names(template: str) -> None:
    with pytest.raises(ValueError):
        naming.output_names(template, "photo", VARIANTS, "studio")


def test_choose_output_set_takes_the_base_names_when_free(fs: FakeFilesystem) -> None:
    fs.create_dir("/out")
    chosen = naming.choose_output_set("/out", names_for, "photo", "rename")
    assert chosen == [Path("/out") / n for n in names_for("photo")]


def test_one_taken_name_moves_the_whole_set(fs: FakeFilesystem) -> None:
    fs.create_file("/out/photo.thumb.webp")
    fs.create_file("/out/photo-1.white.jpg")
    chosen = naming.choose_output_set("/out", names_for, "photo", "rename")
    assert [p.name for p in chosen] == names_for("photo-2")


def test_overwrite_keeps_the_names(fs: FakeFilesystem) -> None:
    fs.create_file("/out/photo.full.png")
    chosen = naming.choose_output_set("/out", names_for, "photo", "overwrite")
    assert [p.name for p in chosen] == names_for("photo")


def test_a_dangling_symlink_counts_as_taken(fs: FakeFilesystem) -> None:
    fs.create_symlink("/out/photo.full.png", "/nowhere")
    chosen = naming.choose_output_set("/out", names_for, "photo", "rename")
    assert chosen[0].name == "photo-1.full.png"


def test_unknown_on_conflict_and_stemless_templates_are_refused(fs: FakeFilesystem) -> None:
    fs.create_file("/out/full.png")
    with pytest.raises(ValueError):
        naming.choose_output_set("/out", names_for, "photo", "skip")
    with pytest.raises(ValueError):
        naming.choose_output_set("/out", lambda s: ["full.png"], "photo", "rename")


def test_long_stems_are_cut_on_character_boundaries_keeping_suffixes(fs: FakeFilesystem) -> None:
    fs.create_dir("/out")
    stem = "é" * 200  # 400 bytes
    fs.create_file("/out/" + naming.choose_output_set("/out", names_for, stem, "rename")[0].name)
    chosen = naming.choose_output_set("/out", names_for, stem, "rename")
    for path in chosen:
        encoded = os.fsencode(path.name)
        assert len(encoded) <= naming.MAX_NAME_BYTES
        encoded.decode("utf-8")  # no character was split
    assert [p.name.split(".", 1)[1] for p in chosen] == ["full.png", "thumb.webp", "white.jpg"]
    assert all(p.name.split(".")[0].endswith("-1") for p in chosen)


def test_undecodable_bytes_survive_truncation(fs: FakeFilesystem) -> None:
    fs.create_dir("/out")
    stem = os.fsdecode(b"\xff\xfe" * 200)
    chosen = naming.choose_output_set("/out", names_for, stem, "rename")
    longest = max(len(os.fsencode(p.name)) for p in chosen)
    assert longest == naming.MAX_NAME_BYTES
    assert os.fsencode(chosen[0].name).startswith(b"\xff\xfe" * 100)


@given(st.text(min_size=1, max_size=300), st.integers(min_value=0, max_value=12))
def test_every_name_fits_name_max(stem: str, number: int) -> None:
    stem = stem.replace("/", "_").replace("\0", "_")
    suffix = f"-{number}" if number else ""
    names = naming._fit(names_for, stem, suffix)
    assert all(len(os.fsencode(n)) <= naming.MAX_NAME_BYTES for n in names)
    kept = names[0].removesuffix(".full.png")
    assert kept.endswith(suffix)
    assert stem.startswith(kept[: len(kept) - len(suffix)])


def test_free_name_follows_the_same_rule(fs: FakeFilesystem) -> None:
    fs.create_file("/arch/photo.jpg")
    fs.create_file("/arch/photo-1.jpg")
    assert naming.free_name("/arch", "photo.jpg") == Path("/arch/photo-2.jpg")
    assert naming.free_name("/arch", "other.jpg") == Path("/arch/other.jpg")
    fs.create_file("/arch/noext")
    assert naming.free_name("/arch", "noext") == Path("/arch/noext-1")
    with pytest.raises(ValueError):
        naming.free_name("/arch", "a/b.jpg")


def test_free_name_of_a_255_byte_name_stays_within_name_max(fs: FakeFilesystem) -> None:
    name = "x" * 251 + ".jpg"
    fs.create_file("/arch/" + name)
    chosen = naming.free_name("/arch", name)
    assert len(chosen.name) == 255
    assert chosen.name.endswith("x-1.jpg")


def test_relative_subfolder() -> None:
    assert naming.relative_subfolder("/in", "a/b/photo.jpg") == Path("a/b")
    assert naming.relative_subfolder("/in", "photo.jpg") == Path(".")
    assert Path("/out") / naming.relative_subfolder("/in", "photo.jpg") == Path("/out")
    assert naming.relative_subfolder("/in", "/in/x/-p.jpg") == Path("x")
    with pytest.raises(ValueError):
        naming.relative_subfolder("/in", "../escape.jpg")
    with pytest.raises(ValueError):
        naming.relative_subfolder("/in", "/elsewhere/p.jpg")


# -- pages of a multi-page input and normalisation's files (issue 10) ---------------------------

def test_every_page_takes_its_suffix_on_the_stem_page_one_included() -> None:
    assert naming.output_stem("sub/scan.tif") == ("scan", "")
    assert naming.output_stem("sub/scan.tif", pages=3) == ("scan", "-p1")
    page_two = naming.page_relpath("sub/scan.tif", 2, "png")
    assert page_two == "sub/scan-p2.png"
    assert naming.output_stem(page_two, page=2, page_of="sub/scan.tif") == ("scan", "-p2")


def test_the_page_suffix_survives_a_name_max_cut_and_precedes_a_conflict_suffix(
    fs: FakeFilesystem,
) -> None:
    fs.create_dir("/out")
    stem = "n" * 250
    first = naming.choose_output_set("/out", names_for, stem, "rename", "-p2")
    assert all(p.name.split(".")[0].endswith("-p2") for p in first)
    assert all(len(os.fsencode(p.name)) <= naming.MAX_NAME_BYTES for p in first)
    fs.create_file(str(first[1]))
    second = naming.choose_output_set("/out", names_for, stem, "rename", "-p2")
    assert all(p.name.split(".")[0].endswith("-p2-1") for p in second)
    assert len(os.fsencode(naming.page_relpath("x" * 251 + ".tif", 12, "png"))) <= 255


def test_a_stamping_temporary_is_one_of_the_jobs_temporaries() -> None:
    download = naming.download_path_for("/out", "job1", 0)
    assert naming.is_job_temp(naming.stamping_path_for(download).name, "job1")
    assert not naming.is_job_temp(naming.stamping_path_for(download).name, "job2")


# -- one bounded retry for every name race ------------------------------------------------

def test_a_lost_name_race_chooses_again_until_a_name_is_taken() -> None:
    chosen: list[int] = []

    def take(n: int) -> str | None:  # the third name is free; others take the first two
        chosen.append(n)
        return f"name-{n}" if n == 3 else None

    taken = naming.retry_name_races(lambda: len(chosen) + 1, take, "test name")
    assert (taken, chosen) == ("name-3", [1, 2, 3])


def test_name_races_are_bounded_and_end_in_a_local_disk_error() -> None:
    tries: list[int] = []

    def lose(n: int) -> str | None:  # another writer always takes the name first
        tries.append(n)
        return None

    with pytest.raises(LocalDiskError, match=f"no free test name after {naming.MAX_NAME_RACES}"):
        naming.retry_name_races(lambda: 0, lose, "test name")
    assert len(tries) == naming.MAX_NAME_RACES


def test_the_name_race_loop_is_written_once() -> None:
    """Outputs, archive, quarantine, error files and requeue all go through retry_name_races."""
    package = Path(naming.__file__).parent.parent
    users = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                   if "MAX_NAME_RACES" in p.read_text(encoding="utf-8"))
    assert users == ["job/naming.py"]
