"""A second look at a network folder's input that the local check found unfinished.

On a network folder the client's caches can hide another machine's writes for a while (see
``intake.stability``), so a file may be claimed before its writer has finished however quiet it
looked, and a good image quarantined as ``invalid_image`` (finding 15). A first ``invalid_image``
(truncated, undecodable) or ``empty_file`` verdict there is therefore not yet the input's fault:
:func:`check_again_later` turns it into an ``UnsettledInputError``, which the failure policy
retries after one more settling period (``stability_s + network_settle_s``: by then the client's
caches show the file as it is; the delay is capped by ``retry.max_delay_s`` like any other).
The job journals ``last_stage = "second-look"`` with it, so the next such verdict counts and the
input is quarantined as usual. A verdict no unfinished writer explains (another format, too
large...) counts at once, as on a local disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from bgcut_watchd.config.model import FolderConfig
from bgcut_watchd.errors import LocalInputError, UnsettledInputError
from bgcut_watchd.intake.fstype import MOUNTINFO_PATH, is_network_folder
from bgcut_watchd.intake.stability import quiet_period_s
from bgcut_watchd.job.validate import EMPTY_FILE, INVALID_IMAGE
from bgcut_watchd.job.workarea import ClaimedJob

MAYBE_UNFINISHED: Final = frozenset({INVALID_IMAGE, EMPTY_FILE})
SECOND_LOOK: Final = "second-look"  # last_stage: the check already waited one more period


def second_look_s(folder: FolderConfig, stability_s: float,
                  mountinfo_path: Path = MOUNTINFO_PATH) -> float | None:
    """How long to wait before checking ``folder``'s input again: one settling period on a
    network folder; None on a local one or with ``network_settle_s = 0``. Raises nothing."""
    if folder.network_settle_s <= 0 or not is_network_folder(folder.inbox, mountinfo_path):
        return None
    return quiet_period_s(stability_s, folder.network_settle_s, on_network=True)


def check_again_later(job: ClaimedJob, exc: LocalInputError, wait_s: float | None) -> None:
    """Raise an ``UnsettledInputError`` instead of the check's verdict ``exc`` when it is the
    first unfinished-looking verdict of ``job`` on a network folder (``wait_s`` given), after
    journaling that; return (the caller raises ``exc``) otherwise.

    Raises UnsettledInputError, or OSError when the journal cannot be written.
    """
    if (wait_s is None or exc.reason not in MAYBE_UNFINISHED
            or job.record.last_stage == SECOND_LOOK):
        return
    job.save(job.record.advance(job.record.state, last_stage=SECOND_LOOK))
    raise UnsettledInputError(exc.detail, exc.reason, retry_after_s=wait_s) from exc
