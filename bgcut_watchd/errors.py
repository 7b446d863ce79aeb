"""The one exception tree of bgcut-watchd.

Every decision the daemon takes about a failure (retry, pause, quarantine) is made from the
class of the exception, never from its message. The tree says who is to blame::

    BgcutError
    ├── ConfigError                    the configuration file is invalid (exit 78)
    ├── UsageError                     a command asked for what cannot be done (exit 2)
    ├── InputError                     the input is to blame: quarantine at once
    │   ├── LocalInputError            rejected by the local check, no API call made
    │   ├── ApiInputError              400 / 413 from the API
    │   └── QuarantineUnfinishedError  a quarantine stopped after its copy: finish it
    ├── NotReadyError                  nothing failed, not yet: run again later, no attempt
    │   ├── InputUnsettledError        the input changed since its claim, or is being written
    │   └── OutputsPendingError        an unanswered process call may still be running
    ├── ApiError                       anything the remote API answered or failed to answer
    │   ├── TransientError             retry the job with backoff
    │   │   ├── ServiceError           5xx, timeouts, resets, truncated or malformed bodies
    │   │   │   ├── AmbiguousOutcomeError  the call may have run: look for its outputs first
    │   │   │   ├── UnreachableError   never reached the service (refused, DNS, connect
    │   │   │   │                      timeout): no file's fault, pauses all API work
    │   │   │   └── BadOutputError     a 200 whose body is not the variant's image: never publish
    │   │   ├── RateLimitedError       429, carrying the clamped Retry-After
    │   │   └── RemoteFileMissingError 404: regional routing or expiry, redo with a new upload
    │   ├── PauseError                 pause every API call, quarantine nothing
    │   │   ├── AuthError              401: the API key (configuration)
    │   │   ├── CreditsError           402: the account has no credits
    │   │   └── BudgetExceededError    the daily budget ([budget]) is spent: no call was sent
    │   └── ApiInputError              (also an InputError, see above)
    └── LocalDiskError                 the outbox/archive/quarantine disk failed: pause the folder

The API key never appears in any of these messages: the client builds them from the endpoint
name, the status and the server's ``detail`` only.
"""

from __future__ import annotations


class BgcutError(Exception):
    """Base of every error bgcut-watchd raises on purpose."""


class ConfigError(BgcutError):
    """The configuration is invalid; ``problems`` lists every problem with its key path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid configuration ({len(self.problems)} problem(s)):\n{lines}")


class UsageError(BgcutError):
    """The command line asks for what cannot be done (an unknown folder, none chosen among
    several); ``cli.main`` prints it (as the error document with ``--json``) and exits 2."""


class InputError(BgcutError):
    """The input file is to blame; ``reason`` is the stable quarantine reason code."""

    reason = "invalid_input"

    def __init__(self, detail: str, reason: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if reason is not None:
            self.reason = reason


class LocalInputError(InputError):
    """Rejected by the local check before any API call (not an image, too big, a FIFO...)."""


class QuarantineUnfinishedError(InputError):
    """The job's quarantine was interrupted after its input's copy reached the quarantine (a
    crash, an unlink that failed): finish it, do not start the job again. ``stage`` and
    ``http_status`` are those of the error file already written."""

    def __init__(self, detail: str, reason: str, stage: str,
                 http_status: int | None = None) -> None:
        super().__init__(detail, reason)
        self.stage = stage
        self.http_status = http_status


class NotReadyError(BgcutError):
    """Nothing failed, but the job cannot go on yet: run it again after ``retry_in_s``, no
    attempt counted, nothing paused."""

    def __init__(self, detail: str, retry_in_s: float) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_in_s = retry_in_s


class InputUnsettledError(NotReadyError):
    """The claimed input changed since its claim, is open for writing, or failed the local check
    so soon after a write that it may be half-written: let it settle first."""


class OutputsPendingError(NotReadyError):
    """A process call went unanswered and may still be running: look for its outputs again
    before paying for another one."""


class ApiError(BgcutError):
    """The remote API failed; carries the endpoint name and the HTTP status when there was one."""

    def __init__(self, endpoint: str, detail: str, http_status: int | None = None) -> None:
        status = f" (HTTP {http_status})" if http_status is not None else ""
        super().__init__(f"{endpoint}{status}: {detail}")
        self.endpoint = endpoint
        self.detail = detail
        self.http_status = http_status


class ApiInputError(ApiError, InputError):
    """400 or 413: the API rejected the input itself. Quarantine, do not retry."""

    def __init__(self, endpoint: str, detail: str, http_status: int | None = None) -> None:
        ApiError.__init__(self, endpoint, detail, http_status)
        self.reason = "too_large" if http_status == 413 else "rejected_by_api"


class TransientError(ApiError):
    """A failure that may go away by itself: retry the job with backoff."""


class ServiceError(TransientError):
    """5xx, a timeout, a reset connection, a truncated or malformed response."""


class AmbiguousOutcomeError(ServiceError):
    """The request may have taken effect on the server, but no usable answer came back.

    Raised for read timeouts, connections lost after the request was sent, 502/504 and
    malformed 2xx bodies. A ``ServiceError`` like any other for the retry policy; before
    re-sending a process call, look for its expected outputs first (a download tells).
    """


class UnreachableError(ServiceError):
    """The request never reached the service: connection refused, a name that does not
    resolve, a connect timeout. No input can be to blame, so the failure policy pauses all API
    work (``engine.failures``) instead of spending the job's attempts."""
class BadOutputError(ServiceError):
    """A downloaded output failed verification: not an image (an HTML page answered 200), cut,
    of another format, or of a size its variant cannot have. Fetched again, then the process
    call is redone once; never published. ``reason`` is its quarantine reason code.
    """

    reason = "bad_output"


class RateLimitedError(TransientError):
    """429: slow down. ``retry_after_s`` is the server's Retry-After, clamped, or None."""

    def __init__(
        self, endpoint: str, detail: str, http_status: int | None = 429,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(endpoint, detail, http_status)
        self.retry_after_s = retry_after_s


class RemoteFileMissingError(TransientError):
    """404 on process or download: the upload expired or lives in another region."""


class PauseError(ApiError):
    """The account or the configuration is to blame: pause all API work, quarantine nothing."""

    reason = "paused"


class AuthError(PauseError):
    """401: the API key is missing or rejected."""

    reason = "auth"


class CreditsError(PauseError):
    """402: the account has run out of credits."""

    reason = "credits"


class BudgetExceededError(PauseError):
    """The next process call would cross ``budget.max_credits_per_day``: it was not sent.
    ``pause_s`` is how long until the budget's day ends (00:00 local time)."""

    reason = "budget"

    def __init__(self, detail: str, pause_s: float) -> None:
        super().__init__("process", detail)
        self.pause_s = pause_s


class LocalDiskError(BgcutError):
    """Writing to a folder's outbox, archive or quarantine failed: keep the input, pause it."""
