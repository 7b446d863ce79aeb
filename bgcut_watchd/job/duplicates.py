"""Duplicate reuse: an input whose content and variant set were processed before gets copies of
the earlier outputs, and no API call, while those outputs are still where the ledger says and
each copy passes the same verification as a download (someone may have edited or cut one)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from bgcut_watchd.config.model import Variant
from bgcut_watchd.errors import BadOutputError
from bgcut_watchd.fsops import copy_file_durably, local_disk, make_dirs
from bgcut_watchd.job.naming import temp_path_for
from bgcut_watchd.job.publish import discard_temps
from bgcut_watchd.ledger import Ledger

log = logging.getLogger("bgcut_watchd.job")

Verify = Callable[[Path, int], None]  # (copy, variant index); raises BadOutputError


def copy_earlier_outputs(ledger: Ledger, sha256: str, variant_key: str,
                         variants: Sequence[Variant], out_dir: Path,
                         job_id: str, verify: Verify | None = None) -> list[str] | None:
    """Copy the outputs of an earlier job with the same content and variants to this job's
    temporaries in ``out_dir``; their paths in variant order, or None when there is nothing to
    reuse (no such job, one of its outputs is gone, or a copy fails ``verify``). Raises
    LocalDiskError.
    """
    earlier = ledger.find_duplicate(sha256, variant_key)
    if earlier is None or len(earlier) != len(variants):
        return None
    # The ledger lists a job's outputs ordered by variant name.
    by_name = dict(zip(sorted(v.name for v in variants), earlier, strict=True))
    # Copies left by an interrupted attempt would make every later copy fail (EEXIST).
    discard_temps(out_dir, job_id)
    try:
        return _copy(variants, by_name, out_dir, job_id, verify)
    except FileNotFoundError:  # an earlier output vanished since the ledger looked
        discard_temps(out_dir, job_id)
        return None
    except BadOutputError as exc:  # changed since it was published: pay for a fresh one
        log.warning("job %s: an earlier output cannot be reused: %s", job_id, exc.detail)
        discard_temps(out_dir, job_id)
        return None


def _copy(variants: Sequence[Variant], by_name: dict[str, Path], out_dir: Path,
          job_id: str, verify: Verify | None) -> list[str]:
    """Raises FileNotFoundError when an earlier output is gone, BadOutputError when a copy
    fails ``verify``, LocalDiskError otherwise."""
    temps: list[str] = []
    with local_disk("copying an earlier output", out_dir, passthrough=(FileNotFoundError,)):
        make_dirs(out_dir)
        for index, variant in enumerate(variants):
            temp = temp_path_for(out_dir, job_id, index)
            copy_file_durably(by_name[variant.name], temp)
            if verify is not None:
                verify(temp, index)
            temps.append(os.fsdecode(temp))
    return temps
