"""``bgcut-watchd check-config [--online] [--json]``: validate the configuration and the folders.

Every problem is listed with its key path and the exit is 78 (``cli`` prints them, as JSON with
``--json``); else a summary of the folders and exit 0. Without ``--online`` a missing API key is
only a warning (``run`` and ``process`` would refuse to start without one; the service gets
it from systemd as a credential, so the warning says how to check it as the service would:
``bgcut-watchd-check``, which runs ``check-config --online`` inside the unit's sandbox). With
``--online`` the key is resolved (its source named, never the key) and the API is reached
with a harmless authenticated call (``GET /v3/file-ops/usage/``): exit 78 when the key is
missing or rejected, 1 when the API cannot be reached or answers with an error, 0 when
everything is green.

It creates nothing: a missing outbox, archive, quarantine or state_dir is a warning ("the
daemon creates it when it starts") as long as its parent lets it be made. Run as root (for the
key file), it warns that folder rights were checked for root, not for the service's user.

``--json`` prints one object::

    config     path of the configuration file
    ok         true when the exit is 0
    problems   list of "<key path>: <problem>" (empty when ok)
    warnings   list of "<key path>: <warning>"
    folders    list of {"name", "inbox", "outbox", "quarantine", "archive", "variants"}
    online     null without --online, else {"key_source": str|null, "reachable": bool,
               "key_valid": bool|null, "latency_ms": float|null, "detail": str}
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

from bgcut_watchd.api import BackgroundCutClient
from bgcut_watchd.commands.common import load, print_warnings
from bgcut_watchd.config.describe import describe
from bgcut_watchd.config.model import Config
from bgcut_watchd.config.secrets import find_api_key, load_http_token
from bgcut_watchd.daemon.notify import targets_for
from bgcut_watchd.errors import ApiError, AuthError, ConfigError, PauseError
from bgcut_watchd.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK


@dataclass(frozen=True)
class OnlineCheck:
    """What ``--online`` found out."""

    key_source: str | None
    reachable: bool
    key_valid: bool | None
    latency_ms: float | None
    detail: str

    @property
    def exit_code(self) -> int:
        if self.key_source is None or self.key_valid is False:
            return EXIT_CONFIG
        return EXIT_OK if self.reachable and self.key_valid else EXIT_FAILURE


def run(args: argparse.Namespace) -> int:
    """Print the summary (and the online check); the exit code above. Raises ConfigError (78)."""
    config = load(args, make=False)  # checks the folders, creates nothing
    load_http_token(config.http)  # the daemon would exit 78 on these two: say so now
    targets_for(config.notify)
    warnings = list(config.warnings)
    if os.geteuid() == 0:
        warnings.append("run as root, who may write anywhere, outside the service's sandbox: "
                        f"folder rights were checked for root; {_AS_THE_SERVICE}")
    online = check_online(config) if args.online else None
    key_problem = _key_problem(config) if online is None else None
    if key_problem is not None:
        warnings.append(f"{key_problem}: {_key_consequence(config)}")
    exit_code = EXIT_OK if online is None else online.exit_code
    if args.json:
        print(json.dumps(_document(config, warnings, online, exit_code), indent=2))
        return exit_code
    print_warnings(config)
    for warning in warnings[len(config.warnings):]:
        print(f"warning: {warning}")
    print(describe(config))
    if online is not None:
        print(_online_text(config, online))
    print("configuration OK" if exit_code == EXIT_OK else "configuration NOT OK")
    return exit_code


def check_online(config: Config) -> OnlineCheck:
    """Resolve the key, then one authenticated call to the API. Raises nothing."""
    try:
        key, source = find_api_key(config.api)
    except ConfigError as exc:
        return OnlineCheck(None, False, None, None, "; ".join(exc.problems))
    try:
        client = BackgroundCutClient(config.api, key)
    except ConfigError as exc:
        return OnlineCheck(source, False, False, None, "; ".join(exc.problems))
    started_s = time.monotonic()
    try:
        client.usage()
    except (AuthError, PauseError) as exc:
        return OnlineCheck(source, True, False, _ms_since(started_s), exc.detail)
    except ApiError as exc:
        return OnlineCheck(source, exc.http_status is not None, None, None, plain_detail(exc))
    finally:
        client.close()
    return OnlineCheck(source, True, True, _ms_since(started_s), "the API accepted the key")


_TRANSPORT = re.compile(r"(?P<what>[^:]+): (?P<kind>\w+): (?P<text>.*)", re.DOTALL)
_ERRNO = re.compile(r"\[Errno -?\d+\] (?P<reason>[^'\")\]]+)")
_PLAIN = (("timed out", "timed out"), ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed"),
          ("SSLError", "TLS handshake failed"), ("RemoteDisconnected", "connection closed"))
DETAIL_LIMIT = 200  # characters of a body or an exception's text shown


def plain_detail(exc: ApiError) -> str:
    """What went wrong, in one short line: the HTTP status and the first words of a body that
    is not the API's JSON (an HTML error page has its tags dropped), or the exception's class
    and its reason in plain words instead of urllib3's text. Raises nothing."""
    if exc.http_status is not None:
        return f"the API answered HTTP {exc.http_status}: {_first_words(exc.detail)}"
    match = _TRANSPORT.fullmatch(exc.detail)
    if match is None:
        return f"the API did not answer: {_first_words(exc.detail)}"
    return (f"the API did not answer: {_reason(match['text'])} ({match['kind']}, "
            f"{match['what']})")


def _reason(text: str) -> str:
    errno = _ERRNO.search(text)
    if errno is not None:
        reason = errno["reason"].strip().lower()
        dns = "name resolution" in reason or "not known" in reason
        return f"the host name does not resolve ({reason})" if dns else reason
    return next((plain for found, plain in _PLAIN if found in text), _first_words(text))


def _first_words(text: str) -> str:
    words = " ".join(re.sub(r"<[^>]*>", " ", text).split())
    return words if len(words) <= DETAIL_LIMIT else words[:DETAIL_LIMIT].rstrip() + "…"


def _key_problem(config: Config) -> str | None:
    try:
        find_api_key(config.api)
    except ConfigError as exc:
        return "; ".join(exc.problems)
    return None


_AS_THE_SERVICE = ("check everything as the service would (its user, its sandbox, its key): "
                   "bgcut-watchd-check, as root (install.sh installs it)")


def _key_consequence(config: Config) -> str:
    """What a missing key means here: outside systemd, whether the service will have one is not
    known (it gets the key as a credential, ``LoadCredential=``, from a root-only file)."""
    if os.environ.get("CREDENTIALS_DIRECTORY"):
        return "run and process will refuse to start"
    key_file = config.api.api_key_file
    if key_file is not None and os.path.lexists(key_file):  # there, but not for us
        fine = ("fine for the service, which never reads that file: systemd hands it the key "
                "as the credential api-key (LoadCredential= in the unit)")
    else:
        fine = ("the service gets the key from systemd as the credential api-key, so the "
                "root-only file LoadCredential= names in the unit must exist")
    return (f"{fine}; run and process started from this shell would need $BGCUT_API_KEY or a "
            f"readable api.api_key_file; {_AS_THE_SERVICE}")


def _ms_since(started_s: float) -> float:
    return round((time.monotonic() - started_s) * 1000.0, 1)


def _online_text(config: Config, online: OnlineCheck) -> str:
    lines = [f"API key: {'from ' + online.key_source if online.key_source else 'none'}"]
    if online.key_source is not None:
        reach = "reachable" if online.reachable else "NOT reachable"
        lines.append(f"API: {config.api.base_url}: {reach}")
        if online.key_valid is not None:
            verdict = "accepted" if online.key_valid else "REJECTED"
            lines.append(f"API key: {verdict} ({online.latency_ms:g} ms)")
    lines.append(f"online check: {online.detail}")
    return "\n".join(lines)


def _document(config: Config, warnings: list[str], online: OnlineCheck | None,
              exit_code: int) -> dict[str, Any]:
    return {
        "config": str(config.source) if config.source else None,
        "ok": exit_code == EXIT_OK,
        "problems": [online.detail] if online and exit_code == EXIT_CONFIG else [],
        "warnings": warnings,
        "folders": [{"name": f.name, "inbox": str(f.inbox), "outbox": str(f.outbox),
                     "quarantine": str(f.quarantine),
                     "archive": str(f.archive) if f.archive else None,
                     "variants": [v.name for v in f.variants]} for f in config.folders],
        "online": asdict(online) if online else None,
    }
