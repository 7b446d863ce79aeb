"""The steps of one job (``job.steps``) run by a :class:`JobRunner` against the real emulator
over loopback, with no engine around it: the order of the steps and what each journals before
the next, a job resumed from its journal that repeats no call it completed, a 402 that leaves
the input where it was, an input changed before the paid call that is not paid for, and the
variant set a job keeps from its claim."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import pytest

from bgcut_watchd.api import BackgroundCutClient
from bgcut_watchd.config import Config
from bgcut_watchd.config.model import ApiConfig, FolderConfig, Variant
from bgcut_watchd.errors import ApiError, CreditsError, InputUnsettledError, ServiceError
from bgcut_watchd.fake_api import FakeApiServer
from bgcut_watchd.job.journal import JOURNAL_NAME, JobState
from bgcut_watchd.job.steps import JobRunner
from bgcut_watchd.job.workarea import ClaimedJob, WorkArea
from bgcut_watchd.ledger import Ledger
from tests.hostile import encode, subject_image
from tests.support import (
    API_KEY,
    all_requests,
    assert_outbox_complete_and_decodable,
    drop_images,
    files_under,
    job_dirs,
    load_checked,
    sha256_of,
    visible_files,
    write_config,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One API request as it was sent: the job's state then, and its journal on disk."""

    endpoint: str
    state: JobState
    journal: dict[str, Any]


class WatchingClient(BackgroundCutClient):
    """The real client, noting the watched job's state as each request goes out;
    ``after_upload`` runs once an upload was answered (a writer that kept its handle)."""

    def __init__(self, api: ApiConfig, api_key: str) -> None:
        super().__init__(api, api_key)
        self.job: ClaimedJob | None = None
        self.calls: list[Call] = []
        self.after_upload: Callable[[], None] | None = None

    def _note(self, endpoint: str) -> None:
        if self.job is not None:
            journal = json.loads((self.job.job_dir / JOURNAL_NAME).read_text("ascii"))
            self.calls.append(Call(endpoint, self.job.record.state, journal))

    def upload(self, path: Path, upload_path: str, filename: str) -> str:
        self._note("upload")
        remote = super().upload(path, upload_path, filename)
        if self.after_upload is not None:
            self.after_upload()
        return remote

    def process(self, input_file_path: str, variants: Sequence[Variant],
                output_file_paths: Sequence[str]) -> list[str]:
        self._note("process")
        return super().process(input_file_path, variants, output_file_paths)

    def download(self, remote_path: str, dest: BinaryIO | Path) -> int:
        if isinstance(dest, Path):  # to a path, the client calls itself again with the file
            self._note("download")
        return super().download(remote_path, dest)


class Direct:
    """The ``ApiCaller`` of a runner without pauses or rate limits: it just runs the call."""

    def call(self, endpoint: str, fn: Callable[[], T]) -> T:
        del endpoint
        return fn()


@dataclass
class Parts:
    """A folder's configuration, the client and the ledger a runner is built of."""

    config: Config
    client: WatchingClient
    ledger: Ledger

    @property
    def folder(self) -> FolderConfig:
        return self.config.folders[0]

    @property
    def root(self) -> Path:
        return self.folder.inbox.parent

    def runner(self, folder: FolderConfig | None = None) -> JobRunner:
        return JobRunner(folder or self.folder, self.config.api, self.config.daemon,
                         self.client, self.ledger, Direct())

    def claim(self, name: str = "pic-0.jpg") -> ClaimedJob:
        """Claim ``name`` from the inbox as the engine does: into the work area with the
        folder's variants, recorded in the ledger; the client watches this job."""
        job = WorkArea(self.folder.inbox).claim(self.folder.name, self.folder.inbox / name,
                                                self.folder.variants)
        assert job is not None
        self.ledger.record_claim(job.job_id, self.folder.name, name,
                                 self.runner().variant_key_of(job))
        self.client.job = job
        return job

    def resume(self, job: ClaimedJob) -> ClaimedJob:
        """Let go of ``job`` and take it back from its journal, as a restart would."""
        job.release()
        (resumed,) = WorkArea(self.folder.inbox).recover(self.folder.name)
        self.client.job = resumed
        return resumed


@pytest.fixture
def parts(tmp_path: Path, emulator: FakeApiServer) -> Iterator[Parts]:
    config = load_checked(write_config(tmp_path, emulator.base_url,
                                       daemon={"stability_s": 0.1}))
    client = WatchingClient(config.api, API_KEY)
    ledger = Ledger(config.daemon.state_dir)
    drop_images(config.folders[0].inbox, 1)
    try:
        yield Parts(config, client, ledger)
    finally:
        client.close()
        ledger.close()


def answered(emulator: FakeApiServer, since: int = 0) -> Counter[tuple[str, int | None]]:
    """(endpoint, status) of every request the emulator answered, from the ``since``-th on."""
    return Counter((e.endpoint, e.status) for e in all_requests(emulator)[since:])


def test_the_steps_run_in_order_and_journal_the_upload_before_the_paid_call(
    parts: Parts, emulator: FakeApiServer,
) -> None:
    source = parts.folder.inbox / "pic-0.jpg"
    content = sha256_of(source)
    job = parts.claim()

    outputs = parts.runner().run(job)

    assert [(c.endpoint, c.state) for c in parts.client.calls] == [
        ("upload", JobState.CLAIMED), ("process", JobState.UPLOADED),
        *[("download", JobState.PROCESSED)] * 3]
    upload, process = parts.client.calls[:2]
    assert upload.journal["state"] == "claiming"  # the claim's record, not written again yet
    # Before the paid call, its input's remote path and its "sent" mark are on disk: a restart
    # uploads nothing again and looks for the outputs before paying twice.
    assert process.journal["state"] == "uploaded"
    assert process.journal["remote_input"] and process.journal["process_sent_at"]
    assert process.journal["sha256"] == content  # validated before the upload
    record = job.record
    assert record.state is JobState.DISPOSED and not job.job_dir.exists()
    assert [Path(p) for p in record.final_outputs] == outputs
    assert list(record.output_sha256s) == [sha256_of(p) for p in outputs]  # verified, hashed
    assert record.dispose_target == str(parts.root / "archive" / "pic-0.jpg")
    assert sha256_of(Path(record.dispose_target)) == content and not source.exists()
    assert_outbox_complete_and_decodable(parts.root / "outbox", ["pic-0.jpg"])
    end = parts.ledger.job_end(job.job_id)
    assert end is not None and end.outcome == "done"
    assert sorted(end.outputs) == sorted(map(str, outputs))


@pytest.mark.parametrize(("fault", "error", "journaled", "calls_after_resume"), [
    ({"credits_exhausted": True}, CreditsError, JobState.UPLOADED,  # a 402 to process
     {("process", 200): 1, ("download", 200): 3}),
    ({"fail_truncate": 1.0}, ServiceError, JobState.PROCESSED,  # every download cut short
     {("download", 200): 3}),
], ids=["after-the-upload", "after-the-process-call"])
def test_a_job_resumed_from_its_journal_repeats_no_call_it_completed(
    parts: Parts, emulator: FakeApiServer, fault: dict[str, object], error: type[ApiError],
    journaled: JobState, calls_after_resume: dict[tuple[str, int], int],
) -> None:
    job = parts.claim()
    emulator.update(**fault)
    with pytest.raises(error):
        parts.runner().run(job)
    emulator.update(**{name: type(value)() for name, value in fault.items()})  # off again
    before = len(all_requests(emulator))
    assert answered(emulator)[("upload", 200)] == 1

    resumed = parts.resume(job)
    assert resumed.record.state is journaled
    outputs = parts.runner().run(resumed)

    assert answered(emulator, since=before) == calls_after_resume
    assert len(outputs) == 3 and resumed.record.state is JobState.DISPOSED
    assert_outbox_complete_and_decodable(parts.root / "outbox", ["pic-0.jpg"])
    assert [p.name for p in files_under(parts.root / "archive")] == ["pic-0.jpg"]


def test_a_402_on_the_process_call_raises_credits_error_and_leaves_the_input_in_place(
    parts: Parts, emulator: FakeApiServer,
) -> None:
    content = sha256_of(parts.folder.inbox / "pic-0.jpg")
    job = parts.claim()
    emulator.update(credits_exhausted=True)

    with pytest.raises(CreditsError) as caught:
        parts.runner().run(job)

    assert caught.value.http_status == 402
    assert sha256_of(job.input_path) == content  # in its job dir, held, not blamed
    assert files_under(parts.root / "quarantine") == []
    assert files_under(parts.root / "outbox") == [] and files_under(parts.root / "archive") == []
    on_disk = json.loads((job.job_dir / JOURNAL_NAME).read_text("ascii"))
    assert on_disk["state"] == "uploaded" and on_disk["remote_input"]
    assert on_disk["process_sent_at"] is None  # answered: a restart need not look for outputs
    assert answered(emulator) == {("upload", 200): 1, ("process", 402): 1}
    end = parts.ledger.job_end(job.job_id)
    assert end is not None and end.outcome == "in_progress"
    job.release()


def test_an_input_changed_after_its_upload_is_not_paid_for_but_uploaded_again(
    parts: Parts, emulator: FakeApiServer,
) -> None:
    job = parts.claim()
    rewritten = encode(subject_image((90, 70), "v2"), "JPEG")

    def a_writer_that_kept_its_handle() -> None:
        parts.client.after_upload = None  # once
        with job.input_path.open("r+b") as stream:
            stream.truncate()
            stream.write(rewritten)

    parts.client.after_upload = a_writer_that_kept_its_handle
    with pytest.raises(InputUnsettledError):
        parts.runner().run(job)
    assert answered(emulator) == {("upload", 200): 1}  # the paid call was never sent
    assert job.record.state is JobState.CLAIMED and job.record.remote_round == 1

    parts.runner().run(job)  # once settled: the new content, from the upload on

    uploads = [e for e in all_requests(emulator) if e.endpoint == "upload"]
    assert len(uploads) == 2 and uploads[0].file_path != uploads[1].file_path
    assert uploads[1].file_path is not None
    assert sha256_of(emulator.local_path(uploads[1].file_path)) == sha256_of(
        parts.root / "archive" / "pic-0.jpg")
    assert answered(emulator)[("process", 200)] == 1
    assert job_dirs(parts.folder.inbox) == []


def test_a_job_keeps_the_variant_set_of_its_claim_whatever_the_runner_says_now(
    parts: Parts, tmp_path: Path, emulator: FakeApiServer,
) -> None:
    job = parts.claim()
    changed = load_checked(write_config(tmp_path, emulator.base_url, daemon={"stability_s": 0.1},
                                        variant_names=("thumb",))).folders[0]
    assert [v.name for v in changed.variants] == ["thumb"]

    outputs = parts.runner(changed).run(job)  # e.g. resumed after a restart with a new config

    assert sorted(p.name for p in outputs) == [
        "pic-0.full.png", "pic-0.thumb.webp", "pic-0.white.jpg"]
    assert sorted(p.name for p in visible_files(parts.root / "outbox")) == sorted(
        p.name for p in outputs)
    assert answered(emulator)[("process", 200)] == 1
