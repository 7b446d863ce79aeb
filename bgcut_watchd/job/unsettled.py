"""How long a network folder's input waits for a second look when the local check found it
unfinished.

On a network folder the client's caches can hide another machine's writes for a while (see
``intake.stability``), so a file may be claimed before its writer has finished however quiet it
looked, and a good image quarantined as ``invalid_image`` (finding 15). A first ``invalid_image``
(truncated, undecodable) or ``empty_file`` verdict there is therefore not yet the input's fault:
``job.settle.InputFreeze.before_blaming`` (the one place that grants a second look, on any
folder) waits one more settling period (``stability_s + network_settle_s``: by then the client's
caches show the file as it is), once per content; the next such verdict counts. A verdict no
unfinished writer explains (another format, too large...) counts at once, as on a local disk.
"""

from __future__ import annotations

from pathlib import Path

from bgcut_watchd.config.model import FolderConfig
from bgcut_watchd.intake.fstype import MOUNTINFO_PATH, is_network_folder
from bgcut_watchd.intake.stability import quiet_period_s


def second_look_s(folder: FolderConfig, stability_s: float,
                  mountinfo_path: Path = MOUNTINFO_PATH) -> float | None:
    """How long to wait before checking ``folder``'s input again: one settling period on a
    network folder; None on a local one or with ``network_settle_s = 0``. Raises nothing."""
    if folder.network_settle_s <= 0 or not is_network_folder(folder.inbox, mountinfo_path):
        return None
    return quiet_period_s(stability_s, folder.network_settle_s, on_network=True)
