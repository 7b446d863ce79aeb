"""The CPU floor of a job's parts, each measured alone in one thread: what the daemon's CPU per
job cannot go below while it keeps its promises, whatever the rest of it costs.

- :func:`promised_checks_cpu_s`: the checks the contract asks of every job (its input decoded
  in full, every output decoded and checked, the outputs' sha256 for the ledger), run again on
  one daemon round's own inputs and outputs.
- :func:`durable_steps_cpu_s`: one job's durable bookkeeping as the daemon does it, with the
  daemon's own functions, on the same filesystem as its rounds: the claim (job dir, journal,
  rename, directory fsyncs), the journal's three other writes (the paid call's "sent" mark, the
  chosen names, published), three outputs written, fdatasynced and renamed, the set published,
  the input archived, the ledger's three writes, the job dir removed. No HTTP and no
  decoding: those are measured apart (the peers' CPU per job, and the checks above).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bgcut_watchd.config.load import load_config
from bgcut_watchd.fsops import fsync_file, sha256_of_regular_file
from bgcut_watchd.job.dispose import archive_target, move_to_target
from bgcut_watchd.job.journal import JobState
from bgcut_watchd.job.naming import download_path_for, temp_path_for
from bgcut_watchd.job.publish import publish_set
from bgcut_watchd.job.validate import validate_input
from bgcut_watchd.job.verify import verify_output
from bgcut_watchd.job.workarea import WorkArea
from bgcut_watchd.ledger import Ledger

__all__ = ["durable_steps_cpu_s", "promised_checks_cpu_s"]


def promised_checks_cpu_s(round_root: Path) -> float:
    """CPU seconds per job, alone in one thread, of the promised checks on the inputs and
    outputs of the daemon round under ``round_root``."""
    folder = load_config(round_root / "config.toml").folders[0]
    variants = {variant.name: variant for variant in folder.variants}
    inputs, outputs = _round_files(round_root)
    started = time.process_time()
    for path in inputs:
        validate_input(path, max_bytes=10**9, max_pixels=10**9)
    for path in outputs:
        verify_output(path, variants[path.name.split(".")[-2]], None)
        sha256_of_regular_file(path)
    return (time.process_time() - started) / len(inputs)


def durable_steps_cpu_s(round_root: Path, root: Path) -> float:
    """CPU seconds per job, alone in one thread, of one job's durable bookkeeping, replayed in
    ``root`` (created; same filesystem as the rounds) with the inputs and outputs of the
    daemon round under ``round_root``."""
    inputs, outputs = _round_files(round_root)
    per_job = len(outputs) // len(inputs)
    inbox, outbox, archive = root / "inbox", root / "outbox", root / "archive"
    for folder in (inbox, outbox, archive):
        folder.mkdir(parents=True)
    for source in inputs:  # the writer's part, not timed
        (inbox / source.name).write_bytes(source.read_bytes())
    bodies = [[path.read_bytes() for path in outputs[n * per_job:(n + 1) * per_job]]
              for n in range(len(inputs))]
    ledger, area = Ledger(root / "state"), WorkArea(inbox)
    started = time.process_time()
    for source, datas in zip(inputs, bodies, strict=True):
        _one_job(area, ledger, inbox / source.name, datas, outbox, archive)
    spent = time.process_time() - started
    ledger.close()
    return spent / len(inputs)


def _round_files(round_root: Path) -> tuple[list[Path], list[Path]]:
    """The archived inputs and the published outputs of the daemon round under ``round_root``,
    sorted (so each job's outputs are together)."""
    studio = round_root / "studio"
    return sorted((studio / "archive").iterdir()), sorted((studio / "outbox").iterdir())


def _one_job(area: WorkArea, ledger: Ledger, source: Path, datas: list[bytes], outbox: Path,
             archive: Path) -> None:
    job = area.claim("studio", source)  # journal: claiming, claimed
    assert job is not None
    ledger.record_claim(job.job_id, "studio", source.name, "floor")
    ledger.update(job.job_id, sha256=sha256_of_regular_file(job.input_path), stage="upload")
    job.save(job.record.advance(JobState.UPLOADED, remote_input="in",  # the paid call's mark
                                process_sent_at=job.record.updated_at))
    job.keep(job.record.advance(JobState.PROCESSED, remote_outputs=tuple(  # as the daemon does
        f"out/{n}" for n in range(len(datas)))))
    temps = []
    for index, data in enumerate(datas):
        part = download_path_for(outbox, job.job_id, index)
        part.write_bytes(data)
        fsync_file(part)
        temps.append(part.rename(temp_path_for(outbox, job.job_id, index)))
    finals = [outbox / f"{source.stem}.{index}.out" for index in range(len(datas))]
    job.save(job.record.advance(JobState.DOWNLOADED, temp_outputs=tuple(map(os.fsdecode, temps)),
                                final_outputs=tuple(map(os.fsdecode, finals))))
    publish_set(temps, finals, overwrite=False)
    target = archive_target(archive, "", source.name)
    job.save(job.record.advance(JobState.PUBLISHED, dispose_target=os.fsdecode(target)))
    move_to_target(job.input_path, target)
    job.keep(job.record.advance(JobState.DISPOSED))  # not journaled, as in the daemon
    ledger.finish_done(job.job_id, finals, 0.0)
    job.finish()
