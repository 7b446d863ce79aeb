"""Quarantine reasons and pause reasons in plain words, for the status page and notifications.

The codes are the stable ones of ``<name>.error.json`` (README, "What happens to my files");
an unknown code (a newer version's) is shown as it is.
"""

from __future__ import annotations

REASONS = {
    "not_regular_file": "not a regular file (a link, a device or a folder)",
    "empty_file": "the file is empty",
    "too_large": "the file is bigger than allowed (daemon.max_input_bytes, or the service's "
                 "limit)",
    "too_many_pixels": "the image has more pixels than allowed (daemon.max_input_pixels)",
    "unsupported_format": "not an image format the service accepts",
    "invalid_image": "not a readable image: damaged, cut short, or not an image at all",
    "unreadable": "the file could not be read",
    "rejected_by_api": "the service refused this image",
    "retries_exhausted": "the service kept failing for this file, so the daemon gave up "
                         "after several tries",
    "internal_error": "an internal error of bgcut-watchd (please report it)",
    "raw_file": "a camera RAW file, which the service does not take",
}

PAUSES = {
    "auth": "the API key was rejected (401): fix the key",
    "credits": "the account is out of credits (402): buy credits",
    "disk": "a folder of it is not writable or full",
    "outage": "the service cannot be reached or fails for every job",
    "unreachable": "the service cannot be reached",
    "budget": "the daily credit budget is used up",
}


def reason_words(code: str | None) -> str:
    """What a quarantine reason code means, for a person."""
    if not code:
        return "unknown reason (no error file)"
    return REASONS.get(code, code.replace("_", " "))


def pause_words(code: str | None) -> str:
    """What a pause reason code means, for a person."""
    if not code:
        return "paused"
    return PAUSES.get(code, code.replace("_", " "))
