"""Tests for bgcut_watchd.config: parsing, every validation rule, the example file, the folders."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyfakefs.fake_filesystem import FakeFilesystem
from pyfakefs.helpers import set_uid

from bgcut_watchd.config import (
    DEFAULT_CONFIG_PATH,
    ApiConfig,
    Config,
    DaemonConfig,
    FolderConfig,
    RetryConfig,
    Variant,
    load_config,
    parse_config,
    resolve_config_path,
)
from bgcut_watchd.config.describe import describe
from bgcut_watchd.config.folders import check_folders
from bgcut_watchd.config.model import HttpConfig, NotifyConfig, expand_output_name
from bgcut_watchd.errors import ConfigError
from bgcut_watchd.mounts import MountTables

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
STUDIO = "/srv/photos/studio"

_BASE: dict[str, Any] = {
    "api": {"base_url": "https://api.backgroundcut.co"},
    "daemon": {"state_dir": "/var/lib/bgcut-watchd"},
    "retry": {},
    "variants": {
        "full": {"format": "png", "max_resolution": 12_000_000, "quality": "high"},
        "thumb": {"format": "webp", "max_resolution": 250_000, "autocrop": True},
        "white": {"format": "jpeg", "background_color": "#ffffff", "output_compression": 85},
    },
    "folders": [
        {
            "name": "studio",
            "inbox": f"{STUDIO}/inbox",
            "outbox": f"{STUDIO}/outbox",
            "quarantine": f"{STUDIO}/quarantine",
            "archive": f"{STUDIO}/done",
            "variants": ["full", "thumb", "white"],
        }
    ],
}


def base_config() -> dict[str, Any]:
    """A fresh valid configuration as parsed TOML, safe to mutate."""
    return copy.deepcopy(_BASE)


def second_folder(**overrides: Any) -> dict[str, Any]:
    folder = {
        "name": "shop",
        "inbox": "/srv/shop/inbox",
        "outbox": "/srv/shop/outbox",
        "quarantine": "/srv/shop/quarantine",
        "on_success": "delete",
        "variants": ["full"],
    }
    folder.update(overrides)
    return folder


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


Mutation = Callable[[dict[str, Any]], None]


def _set(section: str, key: str, value: object) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data[section][key] = value

    return mutate


def _set_variant(name: str, key: str, value: object) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data["variants"][name][key] = value

    return mutate


def _set_folder(key: str, value: object) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data["folders"][0][key] = value

    return mutate


def _del_folder(key: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        del data["folders"][0][key]

    return mutate


def _add_folder(**overrides: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data["folders"].append(second_folder(**overrides))

    return mutate


def _replace(key: str, value: object) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        data[key] = value

    return mutate


def _delete(key: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        del data[key]

    return mutate


def _two_png_variants(data: dict[str, Any]) -> None:
    data["variants"]["thumb"]["format"] = "png"
    data["folders"][0]["output_name"] = "{stem}.{ext}"


BAD_CONFIGS: list[tuple[str, Mutation, list[str]]] = [
    ("unknown top-level key", _replace("daemonn", {}),
     ['daemonn: unknown key (did you mean "daemon"?)']),
    ("unknown folder key", _set_folder("inboxx", "/x"),
     ['folders[0].inboxx: unknown key (did you mean "inbox"?)']),
    ("unknown api key", _set("api", "key", "s3cr3t"), ["api.key: unknown key"]),
    ("unknown variant key", _set_variant("full", "colour", "#000000"),
     ["variants.full.colour: unknown key"]),
    ("workers zero", _set("daemon", "workers", 0), ["daemon.workers: must be >= 1, got 0"]),
    ("workers bool", _set("daemon", "workers", True),
     ["daemon.workers: expected an integer, got boolean"]),
    ("workers float", _set("daemon", "workers", 2.5),
     ["daemon.workers: expected an integer, got float"]),
    ("workers datetime", _set("daemon", "workers", datetime.datetime(2024, 1, 1)),
     ["daemon.workers: expected an integer, got datetime"]),
    ("timeout string", _set("api", "connect_timeout_s", "10"),
     ["api.connect_timeout_s: expected a number, got string"]),
    ("timeout zero", _set("api", "upload_timeout_s", 0),
     ["api.upload_timeout_s: must be > 0, got 0"]),
    ("timeout nan", _set("api", "download_timeout_s", float("nan")),
     ["api.download_timeout_s: must be a finite number, got nan"]),
    ("rate zero", _set("api", "max_requests_per_minute", 0),
     ["api.max_requests_per_minute: must be >= 1, got 0"]),
    ("stability negative", _set("daemon", "stability_s", -0.5),
     ["daemon.stability_s: must be >= 0, got -0.5"]),
    ("rescan zero", _set("daemon", "rescan_interval_s", 0),
     ["daemon.rescan_interval_s: must be > 0, got 0"]),
    ("max_attempts zero", _set("retry", "max_attempts", 0),
     ["retry.max_attempts: must be >= 1, got 0"]),
    ("base delay above max", _set("retry", "max_delay_s", 1),
     ["retry.base_delay_s: must be <= retry.max_delay_s (1.0), got 2.0"]),
    ("auth pause bool", _set("retry", "auth_pause_s", False),
     ["retry.auth_pause_s: expected a number, got boolean"]),
    ("poll interval zero", _set_folder("poll_interval_s", 0),
     ["folders[0].poll_interval_s: must be > 0, got 0"]),
    ("max_resolution low", _set_variant("thumb", "max_resolution", 100),
     ["variants.thumb.max_resolution: must be between 4096 and 25000000, got 100"]),
    ("max_resolution high", _set_variant("full", "max_resolution", 25_000_001),
     ["variants.full.max_resolution: must be between 4096 and 25000000, got 25000001"]),
    ("compression high", _set_variant("white", "output_compression", 101),
     ["variants.white.output_compression: must be between 1 and 100, got 101"]),
    ("format gif", _set_variant("full", "format", "gif"),
     ['variants.full.format: must be one of png, jpeg, jpg, webp, avif, got "gif"']),
    ("quality best", _set_variant("full", "quality", "best"),
     ['variants.full.quality: must be one of high, medium, low, got "best"']),
    ("colour name", _set_variant("white", "background_color", "white"),
     ['variants.white.background_color: must be a colour "#rrggbb", got "white"']),
    ("autocrop string", _set_variant("thumb", "autocrop", "yes"),
     ["variants.thumb.autocrop: expected a boolean, got string"]),
    ("on_success move", _set_folder("on_success", "move"),
     ['folders[0].on_success: must be one of archive, delete, got "move"']),
    ("watch fanotify", _set_folder("watch", "fanotify"),
     ['folders[0].watch: must be one of auto, inotify, polling, got "fanotify"']),
    ("on_conflict skip", _set_folder("on_conflict", "skip"),
     ['folders[0].on_conflict: must be one of rename, overwrite, got "skip"']),
    ("raw_files keep", _set_folder("raw_files", "keep"),
     ['folders[0].raw_files: must be one of ignore, quarantine, got "keep"']),
    ("keep_metadata string", _set_folder("keep_metadata", "yes"),
     ["folders[0].keep_metadata: expected a boolean, got string"]),
    ("base_url ftp", _set("api", "base_url", "ftp://example.com"),
     ['api.base_url: must be an http:// or https:// URL, got "ftp://example.com"']),
    ("base_url no host", _set("api", "base_url", "https://"),
     ['api.base_url: must be an http:// or https:// URL, got "https://"']),
    ("upload_prefix escapes", _set("api", "upload_prefix", "a/../b"),
     ['api.upload_prefix: must be a relative path of [A-Za-z0-9._-] segments separated by "/",'
      ' got "a/../b"']),
    ("upload_prefix absolute", _set("api", "upload_prefix", "/abs"),
     ['api.upload_prefix: must be a relative path of [A-Za-z0-9._-] segments separated by "/",'
      ' got "/abs"']),
    ("missing inbox", _del_folder("inbox"), ["folders[0].inbox: missing required key"]),
    ("missing name", _del_folder("name"), ["folders[0].name: missing required key"]),
    ("missing folder variants", _del_folder("variants"),
     ["folders[0].variants: missing required key"]),
    ("missing archive", _del_folder("archive"),
     ['folders[0].archive: required when on_success = "archive" (the default)']),
    ("empty path", _set_folder("quarantine", ""), ["folders[0].quarantine: must not be empty"]),
    ("no variants at all", _delete("variants"), [
        "variants: at least one [variants.<name>] table is required",
        'folders[0].variants[0]: unknown variant "full" (known: none)',
        'folders[0].variants[1]: unknown variant "thumb" (known: none)',
        'folders[0].variants[2]: unknown variant "white" (known: none)',
    ]),
    ("no folders", _replace("folders", []),
     ["folders: at least one [[folders]] table is required"]),
    ("folders as a table", _replace("folders", {"name": "x"}),
     ["folders: expected an array of tables ([[folders]]), got table"]),
    ("api as a string", _replace("api", "https://x"), ["api: expected a table, got string"]),
    ("variant not a table", _set("variants", "full", "png"),
     ["variants.full: expected a table, got string"]),
    ("unknown variant", _set_folder("variants", ["full", "thumb", "thumbx"]),
     ['folders[0].variants[2]: unknown variant "thumbx" (known: full, thumb, white)']),
    ("variant listed twice", _set_folder("variants", ["full", "full"]),
     ['folders[0].variants[1]: variant "full" is listed twice']),
    ("empty variants list", _set_folder("variants", []),
     ["folders[0].variants: must name at least one variant"]),
    ("variants not strings", _set_folder("variants", ["full", 3]),
     ["folders[0].variants[1]: expected a string, got integer"]),
    ("ignore item not a string", _set_folder("ignore", ["*.raw", 1]),
     ["folders[0].ignore[1]: expected a string, got integer"]),
    ("folder name with slash", _set_folder("name", "a/b"),
     ['folders[0].name: invalid name "a/b": must not contain "/" or control characters']),
    ("duplicate folder names", _add_folder(name="studio"),
     ['folders[1].name: duplicate folder name "studio" (also folders[0].name)']),
    ("shared inbox", _add_folder(inbox=f"{STUDIO}/inbox"),
     [f"folders[1].inbox: same inbox as folders[0].inbox ({STUDIO}/inbox)"]),
    ("inbox inside another", _add_folder(inbox=f"{STUDIO}/inbox/shop"),
     [f"folders[1].inbox: inside folders[0].inbox ({STUDIO}/inbox)"]),
    ("inbox containing another", _add_folder(inbox=STUDIO), [
        f"folders[0].outbox: inside folders[1].inbox ({STUDIO}); it would loop",
        f"folders[0].quarantine: inside folders[1].inbox ({STUDIO}); it would loop",
        f"folders[0].archive: inside folders[1].inbox ({STUDIO}); it would loop",
        f"folders[1].inbox: contains folders[0].inbox ({STUDIO}/inbox)",
    ]),
    ("outbox inside own inbox", _set_folder("outbox", f"{STUDIO}/inbox/out"),
     [f"folders[0].outbox: inside folders[0].inbox ({STUDIO}/inbox); it would loop"]),
    ("archive equal to inbox", _set_folder("archive", f"{STUDIO}/inbox/"),
     [f"folders[0].archive: same as folders[0].inbox ({STUDIO}/inbox); it would loop"]),
    ("quarantine inside another folder's inbox", _add_folder(quarantine=f"{STUDIO}/inbox/q"),
     [f"folders[1].quarantine: inside folders[0].inbox ({STUDIO}/inbox); it would loop"]),
    ("state dir inside an inbox", _set("daemon", "state_dir", f"{STUDIO}/inbox/.state"),
     [f"daemon.state_dir: inside folders[0].inbox ({STUDIO}/inbox);"
      " the daemon would process its own state"]),
    ("output_name without stem", _set_folder("output_name", "{variant}.{ext}"),
     ['folders[0].output_name: must contain {stem}, got "{variant}.{ext}"']),
    ("output_name without variant or ext", _set_folder("output_name", "{stem}-{folder}"),
     ['folders[0].output_name: must contain {variant} or {ext}, got "{stem}-{folder}"']),
    ("output_name unknown placeholder", _set_folder("output_name", "{stem}.{name}.{ext}"),
     ["folders[0].output_name: unknown placeholder {name}"
      " (allowed: {stem}, {variant}, {ext}, {folder})"]),
    ("output_name with a separator", _set_folder("output_name", "{variant}/{stem}.{ext}"),
     ['folders[0].output_name: must not contain "/" or a NUL character,'
      ' got "{variant}/{stem}.{ext}"']),
    ("output_name broken brace", _set_folder("output_name", "{stem.{ext}"),
     ['folders[0].output_name: invalid template "{stem.{ext}": unexpected \'{\' in field name']),
    ("output names collide", _two_png_variants,
     ['folders[0].output_name: variants "full" and "thumb" would both be written as'
      ' "{stem}.png"']),
]


@pytest.mark.parametrize(
    ("mutate", "expected"), [case[1:] for case in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_config_reports_exact_problems(mutate: Mutation, expected: list[str]) -> None:
    data = base_config()
    mutate(data)
    assert problems_of(data) == expected


def test_base_config_is_valid() -> None:
    config = parse_config(base_config())
    assert [folder.name for folder in config.folders] == ["studio"]
    assert config.warnings == ()


def test_every_problem_is_reported_in_one_error() -> None:
    data = base_config()
    data["daemon"]["workers"] = 0
    data["api"]["connect_timeout_s"] = "soon"
    data["variants"]["thumb"]["format"] = "gif"
    data["folders"][0]["inboxx"] = "/typo"
    data["folders"][0]["variants"] = ["full", "nope"]
    data["folders"].append(second_folder(name="studio", outbox=f"{STUDIO}/inbox/x"))
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.problems == [
        "api.connect_timeout_s: expected a number, got string",
        "daemon.workers: must be >= 1, got 0",
        'variants.thumb.format: must be one of png, jpeg, jpg, webp, avif, got "gif"',
        'folders[0].inboxx: unknown key (did you mean "inbox"?)',
        'folders[0].variants[1]: unknown variant "nope" (known: full, thumb, white)',
        'folders[1].name: duplicate folder name "studio" (also folders[0].name)',
        f"folders[1].outbox: inside folders[0].inbox ({STUDIO}/inbox); it would loop",
    ]
    assert "invalid configuration (7 problem(s))" in str(caught.value)
    assert "  - daemon.workers: must be >= 1, got 0" in str(caught.value)


def test_bad_field_in_a_folder_with_a_missing_key_is_still_reported() -> None:
    data = base_config()
    del data["folders"][0]["inbox"]
    data["folders"][0]["watch"] = "sometimes"
    data["folders"][0]["recursive"] = "yes"
    assert problems_of(data) == [
        "folders[0].inbox: missing required key",
        "folders[0].recursive: expected a boolean, got string",
        'folders[0].watch: must be one of auto, inotify, polling, got "sometimes"',
    ]


def test_jpeg_without_background_is_a_warning_not_an_error() -> None:
    data = base_config()
    data["variants"]["plain"] = {"format": "jpg"}
    data["folders"][0]["variants"].append("plain")
    config = parse_config(data)
    assert config.warnings == (
        'variants.plain: format "jpg" without background_color: JPEG cannot be transparent:'
        " the output will have a white background",
    )


def test_other_warnings() -> None:
    data = base_config()
    data["variants"]["full"]["output_compression"] = 50
    data["variants"]["spare"] = {"format": "webp"}
    data["folders"].append(second_folder(archive="/srv/shop/done"))
    config = parse_config(data)
    assert config.warnings == (
        "variants.full.output_compression: has no effect on PNG",
        'folders[1].archive: ignored because on_success = "delete"',
        "variants.spare: not used by any folder",
    )


def test_example_config_loads_without_problems() -> None:
    config = load_config(EXAMPLE)
    assert config.warnings == ()
    assert list(config.variants) == ["full", "thumb", "white"]
    (studio,) = config.folders
    assert studio.name == "studio"
    assert studio.inbox == Path(f"{STUDIO}/inbox")
    assert studio.archive == Path(f"{STUDIO}/done")
    assert [v.name for v in studio.variants] == ["full", "thumb", "white"]
    assert config.variants["white"].background_color == "#ffffff"
    assert config.variants["thumb"].autocrop is True
    assert config.source == EXAMPLE


@pytest.mark.parametrize(
    ("cls", "skip"),
    [(ApiConfig, ()), (DaemonConfig, ()), (RetryConfig, ()), (Variant, ("name",)),
     (FolderConfig, ()), (HttpConfig, ()), (NotifyConfig, ())],
)
def test_example_config_documents_every_field(cls: type, skip: tuple[str, ...]) -> None:
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    tables: list[dict[str, Any]] = {
        ApiConfig: [raw["api"]],
        DaemonConfig: [raw["daemon"]],
        RetryConfig: [raw["retry"]],
        HttpConfig: [raw["http"]],
        NotifyConfig: [raw["notify"]],
        Variant: list(raw["variants"].values()),
        FolderConfig: raw["folders"],
    }[cls]
    present = {key for table in tables for key in table}
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in skip + tuple(present)]
    assert missing == [], f"config.example.toml lacks {cls.__name__} fields {missing}"


def test_example_config_shows_the_defaults() -> None:
    config = load_config(EXAMPLE)
    assert dataclasses.replace(config.api, api_key_file=None) == ApiConfig()
    assert config.daemon == DaemonConfig()
    assert config.retry == RetryConfig()
    assert config.http == HttpConfig()  # nothing listens unless asked
    assert config.notify == NotifyConfig()


def _minimal() -> dict[str, Any]:
    return {
        "variants": {"v": {}},
        "folders": [{"name": "f", "inbox": "/in", "outbox": "/out", "quarantine": "/q",
                     "archive": "/done", "variants": ["v"]}],
    }


def test_defaults_match_product_md() -> None:
    config = parse_config(_minimal())
    assert config.api == ApiConfig(
        base_url="https://api.backgroundcut.co", api_key_file=None, connect_timeout_s=10,
        upload_timeout_s=60, process_timeout_s=300, download_timeout_s=120,
        max_requests_per_minute=120, upload_prefix="bgcut-watchd",
    )
    assert config.daemon == DaemonConfig(
        workers=4, state_dir=Path("/var/lib/bgcut-watchd"), stability_s=2.0,
        rescan_interval_s=300, shutdown_timeout_s=30, max_input_bytes=52428800,
        max_input_pixels=50000000,
    )
    assert config.retry == RetryConfig(
        max_attempts=6, base_delay_s=2.0, max_delay_s=300.0, auth_pause_s=300,
        credits_pause_s=900,
    )
    assert config.variants["v"] == Variant(
        name="v", format="png", max_resolution=12000000, quality="high", background_color=None,
        output_compression=85, autocrop=False,
    )
    folder = config.folders[0]
    assert (folder.on_success, folder.recursive, folder.watch, folder.poll_interval_s) == (
        "archive", True, "auto", 5
    )
    assert (folder.output_name, folder.on_conflict, folder.ignore) == (
        "{stem}.{variant}.{ext}", "rename", ()
    )
    assert folder.reprocess_duplicates is False


def test_integers_are_accepted_as_numbers_and_stored_as_floats() -> None:
    data = _minimal()
    data["api"] = {"connect_timeout_s": 3}
    config = parse_config(data)
    assert config.api.connect_timeout_s == 3.0
    assert isinstance(config.api.connect_timeout_s, float)


def test_base_url_loses_its_trailing_slash() -> None:
    data = _minimal()
    data["api"] = {"base_url": "http://127.0.0.1:8080/"}
    assert parse_config(data).api.base_url == "http://127.0.0.1:8080"


def test_relative_paths_resolve_against_the_config_file_directory(tmp_path: Path) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    config_file = config_dir / "config.toml"
    config_file.write_text(
        '[api]\napi_key_file = "secret/key"\n[daemon]\nstate_dir = "state"\n'
        '[variants.v]\n[[folders]]\nname = "f"\ninbox = "in"\noutbox = "./out"\n'
        'quarantine = "../q"\narchive = "/abs/done"\nvariants = ["v"]\n',
        encoding="utf-8",
    )
    config = load_config(config_file)
    folder = config.folders[0]
    assert folder.inbox == config_dir / "in"
    assert folder.outbox == config_dir / "out"
    assert folder.quarantine == tmp_path / "q"
    assert folder.archive == Path("/abs/done")
    assert config.daemon.state_dir == config_dir / "state"
    assert config.api.api_key_file == config_dir / "secret" / "key"
    assert not (config_dir / "in").exists(), "load_config must not create anything"


def test_home_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/studio")
    data = _minimal()
    data["folders"][0]["inbox"] = "~/drop"
    assert parse_config(data).folders[0].inbox == Path("/home/studio/drop")


def test_load_config_reports_missing_file_and_bad_toml(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert caught.value.problems == [f"{missing}: cannot read: No such file or directory"]
    broken = tmp_path / "broken.toml"
    broken.write_text("[daemon\nworkers = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(broken)
    assert caught.value.problems[0].startswith(f"{broken}: invalid TOML: ")


def test_resolve_config_path_order() -> None:
    env = {"BGCUT_WATCHD_CONFIG": "/from/env.toml"}
    assert resolve_config_path("/from/cli.toml", env) == Path("/from/cli.toml")
    assert resolve_config_path(None, env) == Path("/from/env.toml")
    assert resolve_config_path(None, {}) == DEFAULT_CONFIG_PATH
    assert resolve_config_path(None, {"BGCUT_WATCHD_CONFIG": ""}) == DEFAULT_CONFIG_PATH
    assert Path("/etc/bgcut-watchd/config.toml") == DEFAULT_CONFIG_PATH


def test_output_name_renders_the_template() -> None:
    config = parse_config(base_config())
    studio = config.folders[0]
    white, thumb = config.variants["white"], config.variants["thumb"]
    assert expand_output_name(studio.output_name, "IMG_1", white, studio.name) == "IMG_1.white.jpg"
    assert expand_output_name(studio.output_name, "IMG_1", thumb, studio.name) == "IMG_1.thumb.webp"


def test_config_is_immutable() -> None:
    config = parse_config(base_config())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.daemon.workers = 9  # type: ignore[misc]


def test_describe_summarises_folders_and_variants() -> None:
    data = base_config()
    data["variants"]["spare"] = {"format": "avif"}
    text = describe(parse_config(data, Path("/etc/bgcut-watchd/config.toml")))
    assert "Configuration: /etc/bgcut-watchd/config.toml" in text
    assert f"studio: {STUDIO}/inbox -> {STUDIO}/outbox" in text
    assert "variants full, thumb, white" in text
    assert "white  jpeg, max 12000000 px, quality high, compression 85, background #ffffff" in text
    assert "spare  avif, max 12000000 px, quality high, compression 85" in text
    assert len(text.splitlines()) < 40


# --- check_folders: pure filesystem logic, on pyfakefs ---


def _studio_config() -> Config:
    return parse_config(base_config())


def test_check_folders_creates_missing_folders_but_never_an_inbox(fs: FakeFilesystem) -> None:
    fs.create_dir(f"{STUDIO}/inbox")
    fs.create_dir("/var/lib")
    assert check_folders(_studio_config()) == ([], {})
    for name in ("inbox", "outbox", "quarantine", "done"):
        assert Path(f"{STUDIO}/{name}").is_dir()
        assert list(Path(f"{STUDIO}/{name}").iterdir()) == [], "the probe file must be removed"
    assert Path("/var/lib/bgcut-watchd").is_dir()


def test_a_missing_inbox_is_a_problem_and_is_not_created(fs: FakeFilesystem) -> None:
    """A typo in an inbox path (scannr for scanner) must not be silently created and watched."""
    fs.create_dir(STUDIO)
    fs.create_dir("/var/lib")
    problems, _ = check_folders(_studio_config())
    assert problems == [f"folders[0].inbox: does not exist: {STUDIO}/inbox (the daemon never "
                        "creates an inbox: create it, or fix the path)"]
    assert not Path(f"{STUDIO}/inbox").exists()


def test_a_folder_is_created_only_inside_an_existing_parent(fs: FakeFilesystem) -> None:
    fs.create_dir(f"{STUDIO}/inbox")
    fs.create_dir("/var/lib")
    data = base_config()
    data["folders"][0]["outbox"] = "/srv/photos/studio/web/outbox"
    problems, _ = check_folders(parse_config(data))
    assert problems == ["folders[0].outbox: cannot create /srv/photos/studio/web/outbox: its "
                        "parent folder /srv/photos/studio/web does not exist (create it, or fix "
                        "the path)"]
    assert not Path("/srv/photos/studio/web").exists()


def test_a_folder_under_a_declared_but_unmounted_share_is_on_standby(tmp_path: Path) -> None:
    share = tmp_path / "mnt" / "share"
    share.mkdir(parents=True)  # the empty mount point
    fstab = tmp_path / "fstab"
    fstab.write_text(f"# <fs> <mount point> <type>\nnas:/photos {share} nfs4 defaults,_netdev 0 0\n"
                     "/dev/sda2 none swap sw 0 0\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
    tables = MountTables(mountinfo=mountinfo, fstab=fstab, units_dirs=(tmp_path / "units",))
    data = _minimal()
    data["daemon"] = {"state_dir": str(tmp_path / "state")}
    data["folders"][0].update(inbox=str(share / "inbox"), outbox=str(share / "out"),
                              quarantine=str(share / "q"), archive=str(share / "done"))
    config = parse_config(data, tmp_path / "config.toml")
    problems, standby = check_folders(config, tables)
    assert problems == []  # not "inbox does not exist": it waits
    assert "is declared in" in standby[config.folders[0].name] and "not mounted" in \
        standby[config.folders[0].name]
    assert sorted(p.name for p in share.iterdir()) == []  # nothing written on the local disk
    mountinfo.write_text(f"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
                         f"40 22 0:40 / {share} rw - nfs4 nas:/photos rw\n")
    (share / "inbox").mkdir()
    assert check_folders(config, tables) == ([], {})  # mounted: checked and used


def test_check_folders_reports_unwritable_folders(fs: FakeFilesystem) -> None:
    fs.create_dir(f"{STUDIO}/outbox")
    fs.create_dir(f"{STUDIO}/inbox")
    fs.create_dir("/var/lib")
    fs.chmod(STUDIO, 0o777)  # create_dir applies the umask to perm_bits
    fs.chmod(f"{STUDIO}/inbox", 0o777)
    fs.chmod(f"{STUDIO}/outbox", 0o555)
    fs.chmod("/var/lib", 0o555)
    set_uid(1000)
    try:
        problems, _ = check_folders(_studio_config())
    finally:
        set_uid(0)
    assert problems == [
        "daemon.state_dir: cannot create /var/lib/bgcut-watchd: Permission denied",
        f"folders[0].outbox: not writable: {STUDIO}/outbox",
    ]


def test_check_folders_reports_a_file_where_a_folder_should_be(fs: FakeFilesystem) -> None:
    fs.create_dir(f"{STUDIO}/inbox")
    fs.create_file(f"{STUDIO}/quarantine", contents="oops")
    fs.create_file("/var/lib/bgcut-watchd")
    assert check_folders(_studio_config())[0] == [
        "daemon.state_dir: not a directory: /var/lib/bgcut-watchd",
        f"folders[0].quarantine: not a directory: {STUDIO}/quarantine",
    ]


def test_check_folders_on_real_folders(tmp_path: Path) -> None:
    data = _minimal()
    data["daemon"] = {"state_dir": "state"}
    data["folders"][0].update(inbox="in", outbox="out", quarantine="q", archive="done")
    config = parse_config(data, tmp_path / "config.toml")
    (tmp_path / "in").mkdir()
    assert check_folders(config) == ([], {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done", "in", "out", "q", "state"]
    assert all(not any(p.iterdir()) for p in tmp_path.iterdir())


@pytest.mark.parametrize("make", [True, False], ids=["daemon", "check-config"])
def test_check_folders_reports_a_broken_symlink_where_a_folder_should_be(
        tmp_path: Path, make: bool) -> None:
    """A symlink to a folder that is gone (a share's mount point, a moved disk) is a problem
    the same for the daemon and for ``check-config``'s dry run: it used to pass the dry run
    (the daemon then refused it with exit 78) and to be called "not a directory"."""
    data = _minimal()
    data["daemon"] = {"state_dir": "state"}
    data["folders"][0].update(inbox="in", outbox="out", quarantine="q", archive="done")
    config = parse_config(data, tmp_path / "config.toml")
    (tmp_path / "in").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "gone")
    problems, _ = check_folders(config, make=make)
    assert problems == ["folders[0].outbox: a symbolic link to a folder that does not exist: "
                        f"{tmp_path / 'out'} (fix the link, or the path)"]
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("declared_in", ["etc", "run"])
def test_a_share_declared_by_a_systemd_mount_unit_puts_its_folder_on_standby(
        tmp_path: Path, declared_in: str) -> None:
    """The same as fstab for a ``.mount`` unit, the administrator's (``/etc/systemd/system``)
    or the runtime's (``/run/systemd/system``, ``systemd-mount``)."""
    share = tmp_path / "srv" / "nas photos"
    share.mkdir(parents=True)
    units = {name: tmp_path / name for name in ("etc", "run")}
    for directory in units.values():
        directory.mkdir()
    (units[declared_in] / "srv-nas\\x20photos.mount").write_text(
        f"[Unit]\nDescription=NAS\n\n[Mount]\nWhat=//nas/photos\nWhere={share}\nType=cifs\n")
    fstab = tmp_path / "fstab"
    fstab.write_text("")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n")
    tables = MountTables(mountinfo=mountinfo, fstab=fstab,
                         units_dirs=(units["etc"], units["run"]))
    data = _minimal()
    data["daemon"] = {"state_dir": str(tmp_path / "state")}
    data["folders"][0].update(inbox=str(share / "inbox"), outbox=str(share / "out"),
                              quarantine=str(share / "q"))
    config = parse_config(data, tmp_path / "config.toml")
    problems, standby = check_folders(config, tables)
    assert problems == [] and "srv-nas\\x20photos.mount" in standby[config.folders[0].name]
    assert list(share.iterdir()) == []  # nothing written on the local disk
