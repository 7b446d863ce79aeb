"""The scripts a user could write instead of running the daemon, from naive to hand-tuned.

Each processes every file of a folder with the same three variants as ``bench/naive.py``
(upload, one process call, one download per output, written to disk) and returns
``(files, elapsed seconds)`` from just before its first upload to just after its last output
is written, like ``naive.run_folder``:

- ``naive.run_folder``: the API's documented example in a loop, one file at a time;
- :func:`careful_folder`: what a careful user writes: ``ThreadPoolExecutor(workers)``, one
  ``requests.Session`` per thread (``threading.local``), each job's downloads one after the
  other;
- :func:`tuned_folder`: the best hand-tuned script: sessions with a connection pool as large as
  the threads that share it, keep-alive, a job's downloads at once on a shared download pool,
  each streamed to its file in 1 MiB pieces.
- :func:`lean_folder`: the tuned script's shape on urllib3 alone, without requests: not what a
  user writes, but the CPU floor of the calls themselves in Python (the throughput bench quotes
  its CPU per job beside the daemon's).

None of them checks what it downloads: the daemon verifies every output before publishing it,
journals every step and archives every input, so these are faster than a script a user
should trust with their files.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from bench.naive import EXTENSIONS, VARIANTS

UPLOAD = "/v3/file-ops/upload/"
PROCESS = "/v3/tools/ai/remove-bg/process/"
CHUNK_BYTES = 1024 * 1024
DOWNLOADS_PER_JOB = len(VARIANTS)


class _Sessions:
    """One ``requests.Session`` per thread, authorised, with ``pool_maxsize`` connections."""

    def __init__(self, api_key: str, pool_maxsize: int | None = None) -> None:
        self._local = threading.local()
        self._api_key = api_key
        self._pool_maxsize = pool_maxsize
        self._all: list[requests.Session] = []
        self._lock = threading.Lock()

    def get(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"Token {self._api_key}"
            if self._pool_maxsize is not None:
                adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self._pool_maxsize)
                session.mount("http://", adapter)
            self._local.session = session
            with self._lock:
                self._all.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            sessions, self._all = self._all, []
        for session in sessions:
            session.close()


def _upload_and_process(session: requests.Session, base_url: str, image: Path,
                        tag: str) -> list[str]:
    """Upload ``image`` and process it into the three variants; the output paths.

    Raises:
        requests.HTTPError: a call failed.
    """
    with image.open("rb") as stream:
        upload = session.post(f"{base_url}{UPLOAD}", files={"files": (image.name, stream)},
                              data={"upload_path": tag}, timeout=60)
    upload.raise_for_status()
    stored = upload.json()["file_paths"][0]
    variants = [{**v, "output_file_path": f"{tag}/out/{image.stem}.{n}.{EXTENSIONS[n]}"}
                for n, v in enumerate(VARIANTS)]
    process = session.post(f"{base_url}{PROCESS}", timeout=300,
                           json={"input_file_path": stored, "output_variants": variants})
    process.raise_for_status()
    paths: list[str] = process.json()["output_file_paths"]
    return paths


def _download_whole(session: requests.Session, base_url: str, remote: str,
                    out_dir: Path) -> None:
    answer = session.get(f"{base_url}/v3/files/{remote}", timeout=120)
    answer.raise_for_status()
    (out_dir / remote.rsplit("/", 1)[1]).write_bytes(answer.content)


def _download_streamed(session: requests.Session, base_url: str, remote: str,
                       out_dir: Path) -> None:
    with session.get(f"{base_url}/v3/files/{remote}", timeout=120, stream=True) as answer:
        answer.raise_for_status()
        with (out_dir / remote.rsplit("/", 1)[1]).open("wb") as out:
            for chunk in answer.iter_content(CHUNK_BYTES):
                out.write(chunk)


def _timed(images: list[Path], work: Callable[[Path], Any], workers: int) -> tuple[int, float]:
    """Run ``work`` over ``images`` on ``workers`` threads; (files, elapsed seconds)."""
    with ThreadPoolExecutor(workers, thread_name_prefix="job") as pool:
        started = time.monotonic()
        for _ in pool.map(work, images):  # re-raises the first failure
            pass
        return len(images), time.monotonic() - started


def _images(inbox: Path, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return sorted(p for p in inbox.iterdir() if p.is_file())


def careful_folder(base_url: str, api_key: str, inbox: Path, out_dir: Path,
                   workers: int) -> tuple[int, float]:
    """The careful user's script over every file of ``inbox``; (files, elapsed seconds).

    Raises:
        requests.HTTPError: a call failed.
    """
    images = _images(inbox, out_dir)
    sessions = _Sessions(api_key)

    def one(image: Path) -> None:
        session = sessions.get()
        for remote in _upload_and_process(session, base_url, image, "careful"):
            _download_whole(session, base_url, remote, out_dir)

    try:
        return _timed(images, one, workers)
    finally:
        sessions.close()


def tuned_folder(base_url: str, api_key: str, inbox: Path, out_dir: Path,
                 workers: int) -> tuple[int, float]:
    """The hand-tuned script over every file of ``inbox``; (files, elapsed seconds).

    Raises:
        requests.HTTPError: a call failed.
    """
    images = _images(inbox, out_dir)
    job_sessions = _Sessions(api_key, pool_maxsize=1)
    fetch_sessions = _Sessions(api_key, pool_maxsize=1)
    try:
        return _timed_with_fetchers(
            images, workers,
            lambda image: _upload_and_process(job_sessions.get(), base_url, image, "tuned"),
            lambda remote: _download_streamed(fetch_sessions.get(), base_url, remote, out_dir))
    finally:
        job_sessions.close()
        fetch_sessions.close()


def _timed_with_fetchers(images: list[Path], workers: int,
                         remotes_of: Callable[[Path], list[str]],
                         fetch: Callable[[str], None]) -> tuple[int, float]:
    """:func:`_timed` of jobs that upload and process an image (``remotes_of``: its outputs'
    remote paths), then fetch a job's outputs at once on a shared download pool."""
    fetchers = ThreadPoolExecutor(workers * DOWNLOADS_PER_JOB, thread_name_prefix="download")

    def one(image: Path) -> None:
        for _ in fetchers.map(fetch, remotes_of(image)):  # re-raises a failed download
            pass

    try:
        return _timed(images, one, workers)
    finally:
        fetchers.shutdown()


def lean_folder(base_url: str, api_key: str, inbox: Path, out_dir: Path,
                workers: int) -> tuple[int, float]:
    """The tuned script's shape on one urllib3 pool, no requests; (files, elapsed seconds).

    Raises:
        urllib3.exceptions.HTTPError: a call failed (statuses of 400 and above included).
    """
    images = _images(inbox, out_dir)
    pool = urllib3.PoolManager(maxsize=workers * (1 + DOWNLOADS_PER_JOB), retries=False)
    auth = {"Authorization": f"Token {api_key}"}

    def call(method: str, path: str, **kwargs: Any) -> Any:
        answer = pool.request(method, f"{base_url}{path}", timeout=300, **kwargs)
        if answer.status >= 400:
            raise urllib3.exceptions.HTTPError(f"{path}: HTTP {answer.status}")
        return json.loads(answer.data)

    def fetch(remote: str) -> None:
        answer = pool.request("GET", f"{base_url}/v3/files/{remote}", headers=auth,
                              timeout=120, preload_content=False)
        try:
            if answer.status >= 400:
                raise urllib3.exceptions.HTTPError(f"{remote}: HTTP {answer.status}")
            with (out_dir / remote.rsplit("/", 1)[1]).open("wb") as out:
                for chunk in answer.stream(CHUNK_BYTES):
                    out.write(chunk)
        finally:
            answer.release_conn()

    def upload_and_process(image: Path) -> list[str]:
        stored = call("POST", UPLOAD, headers=auth, fields={
            "upload_path": "lean", "files": (image.name, image.read_bytes())})["file_paths"][0]
        variants = [{**v, "output_file_path": f"lean/out/{image.stem}.{n}.{EXTENSIONS[n]}"}
                    for n, v in enumerate(VARIANTS)]
        remotes: list[str] = call(
            "POST", PROCESS, headers={**auth, "Content-Type": "application/json"},
            body=json.dumps({"input_file_path": stored, "output_variants": variants}),
        )["output_file_paths"]
        return remotes

    try:
        return _timed_with_fetchers(images, workers, upload_and_process, fetch)
    finally:
        pool.clear()
