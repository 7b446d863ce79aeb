"""What each API endpoint does, apart from HTTP plumbing: auth, upload, process, files, usage.

Client mistakes are raised as werkzeug ``HTTPException`` subclasses whose ``description`` is
the JSON ``detail`` the handler sends back.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    NotFound,
    RequestEntityTooLarge,
    Unauthorized,
)
from werkzeug.formparser import parse_form_data

from bgcut_watchd.fake_api.credits import CreditAccount, Pricing, call_credits
from bgcut_watchd.fake_api.faults import FaultDice
from bgcut_watchd.fake_api.options import FakeApiOptions
from bgcut_watchd.fake_api.paths import sanitise_file_name, validate_remote_path
from bgcut_watchd.fake_api.prerender import PrerenderCache, header_size
from bgcut_watchd.fake_api.render import (
    RenderSpec,
    UnreadableImageError,
    decode_image,
    render_decoded,
)
from bgcut_watchd.fake_api.reqlog import RequestLog
from bgcut_watchd.fake_api.storage import Storage, StoredFile
from bgcut_watchd.fake_api.variants import parse_process_request

MAX_FORM_FIELD_BYTES = 1024 * 1024
MAX_FORM_PARTS = 100
INVALID_TOKEN_DETAIL = "Invalid token."  # noqa: S105 - a message, not a secret


class PaymentRequired(HTTPException):
    """402: werkzeug has no class for it."""

    code = 402
    description = "Insufficient credits."


class FakeApiApp:
    """The emulator's state: current options, API key, storage, fault dice and request log."""

    def __init__(
        self, options: FakeApiOptions, api_key: str, storage: Storage,
        clock: Callable[[], float], sleep: Callable[[float], Any],
    ) -> None:
        self._options = options
        self._options_lock = threading.Lock()
        self._api_key = api_key
        self.storage = storage
        self.clock = clock
        self.sleep = sleep
        self.dice = FaultDice(options.seed)
        self.log = RequestLog()
        self.credits = CreditAccount(options.credits_balance)
        self.prerendered = PrerenderCache()

    @property
    def options(self) -> FakeApiOptions:
        """The options in force now (an immutable snapshot)."""
        with self._options_lock:
            return self._options

    def update(self, changes: Mapping[str, Any]) -> FakeApiOptions:
        """Apply a partial change of options; a new ``seed`` restarts the dice.

        Raises:
            ValueError: unknown field or invalid value (nothing is changed then).
        """
        with self._options_lock:
            self._options = self._options.with_changes(changes)
            options = self._options
        if "seed" in changes:
            self.dice.reseed(options.seed)
        if "credits_balance" in changes:
            self.credits.set_balance(options.credits_balance)
        return options

    def authenticate(self, header: str | None) -> None:
        """Check ``Authorization: Token <key>`` against the emulator's key.

        Raises:
            Unauthorized: the header is missing or the key is wrong.
        """
        if not header:
            raise Unauthorized(description="Authentication credentials were not provided.")
        scheme, _, key = header.partition(" ")
        expected = self._api_key.encode()
        if scheme != "Token" or not hmac.compare_digest(key.strip().encode(), expected):
            raise Unauthorized(description=INVALID_TOKEN_DETAIL)

    def upload(
        self, stream: IO[bytes], headers: Mapping[str, str], options: FakeApiOptions
    ) -> list[str]:
        """Store every ``files`` part under the ``upload_path`` field; return the stored paths.

        Raises:
            BadRequest: missing or invalid field.
            RequestEntityTooLarge: a file is larger than ``max_upload_bytes``.
        """
        temps: list[IO[bytes]] = []

        def stream_factory(*_args: Any, **_kwargs: Any) -> IO[bytes]:
            temp = self.storage.new_temp()
            temps.append(temp)
            return temp

        environ = _multipart_environ(stream, headers)
        try:
            _, form, files = parse_form_data(
                environ, stream_factory=stream_factory, max_form_memory_size=MAX_FORM_FIELD_BYTES,
                max_form_parts=MAX_FORM_PARTS,
            )
            parts = files.getlist("files")
            upload_path = _upload_path(form.get("upload_path"), bool(parts))
            _check_sizes(parts, options.max_upload_bytes)
            self.storage.purge_expired(options.expiry_s)
            return [self._commit(part, upload_path) for part in parts]
        finally:
            for temp in temps:
                temp.close()
                Path(temp.name).unlink(missing_ok=True)

    def _commit(self, part: FileStorage, upload_path: str) -> str:
        part.stream.flush()
        temp = Path(part.stream.name)  # our stream_factory's named temporary file
        try:
            return self.storage.commit_upload(temp, upload_path, sanitise_file_name(part.filename))
        except ValueError as exc:
            raise BadRequest(description=f"upload_path: {exc}") from exc

    def process(self, body: bytes,
                options: FakeApiOptions) -> tuple[str, list[str], float]:
        """Render every variant of a process call; returns (input path, output paths, credits
        charged).

        A 400 is not charged (api-v3.md, "Credits"): everything that can refuse the call is
        checked first (the body, the input, that it decodes, that no stored file or folder is
        in the way of an output); the call is charged (``fake_api.credits``) before rendering,
        and refunded when storing its outputs still fails. With ``prerendered``, only the
        input's header is read, and the outputs come from ``fake_api.prerender`` (one real
        render per input size and variant; a body that does not decode is refunded too).

        Raises:
            BadRequest: malformed JSON, invalid field, unreadable input image, or an output
                path a stored file or folder is in the way of.
            NotFound: the input file does not exist (or expired).
            PaymentRequired: the balance cannot pay for the call (nothing is charged).
        """
        try:
            request = parse_process_request(json.loads(body))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            raise BadRequest(description=_json_detail(exc)) from exc
        local = self.storage.local_path(self.find(request.input_file_path, options).path)
        paths = [variant.output_file_path for variant in request.variants]
        specs = [v.spec for v in request.variants]
        _storable(self.storage, paths)
        try:
            image = None if options.prerendered else decode_image(local)
            size = header_size(local) if image is None else image.size
        except UnreadableImageError as exc:
            raise BadRequest(description=str(exc)) from exc
        cost = self._charge(options, size, specs)
        try:
            outputs = (self.prerendered.outputs(local, size, specs) if image is None
                       else render_decoded(image, specs))
            _store(self.storage, paths, outputs)
        except BadRequest:
            self.credits.refund(cost)
            raise
        except UnreadableImageError as exc:
            self.credits.refund(cost)
            raise BadRequest(description=str(exc)) from exc
        return request.input_file_path, paths, cost

    def _charge(self, options: FakeApiOptions, size: tuple[int, int],
                specs: list[RenderSpec]) -> float:
        """Charge a process call for an input of ``size``; return what was charged.

        Raises:
            PaymentRequired: the balance cannot pay for it (nothing is charged).
        """
        cost = call_credits(_pricing(options), size[0] * size[1],
                            [(spec.max_resolution, spec.autocrop) for spec in specs])
        if not self.credits.charge(cost):
            raise PaymentRequired()
        return cost

    def find(self, path: str, options: FakeApiOptions) -> StoredFile:
        """The live stored file at ``path``.

        Raises:
            NotFound: no such file, or it expired.
        """
        entry = self.storage.find(path, options.expiry_s)
        if entry is None:
            raise NotFound(description=f"File not found: {path}")
        return entry

    def usage(self, options: FakeApiOptions) -> dict[str, Any]:
        """Storage used against the quota, and the emulator's own credit fields
        (``credits_balance``, null when unlimited; ``credits_charged``; ``charged_calls``)."""
        files = self.storage.live_files(options.expiry_s)
        return {
            "used_bytes": sum(f.size_bytes for f in files),
            "quota_bytes": options.quota_bytes,
            "files": len(files),
            "expiry_s": options.expiry_s,
            **self.credits.snapshot(),
        }


def _storable(storage: Storage, paths: list[str]) -> None:
    """Refuse, before anything is charged, output paths a stored file or folder is in the way of.

    Raises:
        BadRequest: naming the first such path.
    """
    for path in paths:
        try:
            storage.check_output(path)
        except ValueError as exc:
            raise BadRequest(description=f"output_file_path {path!r}: {exc}") from exc


def _store(storage: Storage, paths: list[str], outputs: list[bytes]) -> None:
    """Store each output at its path.

    Raises:
        BadRequest: a path turned out impossible (two outputs of one call in each other's way).
    """
    for path, data in zip(paths, outputs, strict=True):
        try:
            storage.store_output(path, data)
        except ValueError as exc:
            raise BadRequest(description=f"output_file_path {path!r}: {exc}") from exc


def _pricing(options: FakeApiOptions) -> Pricing:
    return Pricing(first_min=options.price_first_min, first_max=options.price_first_max,
                   full_at_pixels=options.price_full_at_pixels,
                   extra_variant=options.price_extra_variant, autocrop=options.price_autocrop)


def _multipart_environ(stream: IO[bytes], headers: Mapping[str, str]) -> dict[str, Any]:
    """A minimal WSGI environ for werkzeug's form parser; ``stream`` is already bounded."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": headers.get("Content-Type", ""),
        "wsgi.input": stream,
        "wsgi.input_terminated": True,
    }
    if headers.get("Content-Length"):
        environ["CONTENT_LENGTH"] = headers["Content-Length"]
    return environ


def _upload_path(value: str | None, has_files: bool) -> str:
    if not has_files:
        raise BadRequest(description="files: no file was submitted")
    if value is None:
        raise BadRequest(description="upload_path: this field is required")
    try:
        return validate_remote_path(value.strip("/"), "upload_path")
    except ValueError as exc:
        raise BadRequest(description=str(exc)) from exc


def _check_sizes(parts: list[FileStorage], max_bytes: int | None) -> None:
    if max_bytes is None:
        return
    for part in parts:
        if part.stream.seek(0, 2) > max_bytes:
            raise RequestEntityTooLarge(
                description=f"File too large. Maximum upload size is {max_bytes} bytes."
            )


def _json_detail(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"Malformed JSON: {exc.msg}"
    return str(exc)
