"""The BackgroundCut API v3 client (api-v3.md); failures are raised as bgcut_watchd.errors.

``client`` (one method per endpoint), ``statuses`` (answers and transport failures become
exceptions, in one place), ``body`` (bounded JSON answers and streamed downloads), ``deadline``
and ``alarms`` (each call's total deadline).
"""

from __future__ import annotations

from bgcut_watchd.api.client import (
    BackgroundCutClient,
    file_url_path,
    safe_upload_name,
    variant_body,
)
from bgcut_watchd.api.statuses import RETRY_AFTER_MAX_S
from bgcut_watchd.errors import AmbiguousOutcomeError

__all__ = [
    "RETRY_AFTER_MAX_S",
    "AmbiguousOutcomeError",
    "BackgroundCutClient",
    "file_url_path",
    "safe_upload_name",
    "variant_body",
]
