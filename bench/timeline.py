"""The daemon's per-job timelines (``bgcut_watchd.job.timeline``) summed up.

With ``BGCUT_WATCHD_LOG_LEVEL=DEBUG`` the daemon logs, for every job done, the consecutive spans
of its run: the API calls (``upload``, ``process``, ``download``; the downloads side by side,
with their verification) and the work between them (``claim``, ``wait``, ``check``, ``journal``,
``publish``, ``dispose``, ``ledger``, ``finish``). This reads them back from its log: the share
of a job's wall time spent in API calls, and the gaps that cost the most per job.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from dataclasses import dataclass

from bgcut_watchd.job.timeline import API_SPANS

DEBUG_ENV = {"BGCUT_WATCHD_LOG_LEVEL": "DEBUG"}
_LINE = re.compile(r"job (\w+) timeline ms: (.*)$")


@dataclass(frozen=True)
class TimelineSummary:
    """Means per job over the jobs of one log."""

    jobs: int
    wall_ms: float
    api_ms: float
    gaps_ms: dict[str, float]  # per span name outside the API calls, largest first
    slot_ms: float = 0.0  # from taking an API slot to the last download: the critical path

    @property
    def api_share(self) -> float:
        return self.api_ms / self.wall_ms if self.wall_ms else 0.0

    @property
    def api_share_of_slot(self) -> float:
        """API time / time holding an API slot: what limits throughput when the slots bind."""
        return self.api_ms / self.slot_ms if self.slot_ms else 0.0

    def top_gaps(self, count: int = 3) -> str:
        """``"journal 9.1 ms, claim 5.0 ms, ..."``: the ``count`` costliest gaps."""
        return ", ".join(f"{name} {ms:.1f} ms" for name, ms in list(self.gaps_ms.items())[:count])


def parse_timelines(log_text: str) -> list[list[tuple[str, float]]]:
    """Every job's spans ``(name, ms)`` found in a daemon log."""
    found = []
    for line in log_text.splitlines():
        match = _LINE.search(line)
        if match:
            spans = [part.split("=", 1) for part in match.group(2).split()]
            found.append([(name, float(ms)) for name, ms in spans])
    return found


def summarise(log_text: str) -> TimelineSummary:
    """Mean wall, API and per-gap milliseconds per job. Raises ValueError when no job
    timeline is in the log (the daemon did not run at DEBUG)."""
    timelines = parse_timelines(log_text)
    if not timelines:
        raise ValueError("no job timeline in the daemon log: was it run at DEBUG level?")
    gaps: dict[str, list[float]] = defaultdict(list)
    walls, apis, slots = [], [], []
    for spans in timelines:
        walls.append(sum(ms for _, ms in spans))
        apis.append(sum(ms for name, ms in spans if name in API_SPANS))
        slots.append(_slot_ms(spans))
        per_job: dict[str, float] = defaultdict(float)
        for name, ms in spans:
            if name not in API_SPANS:
                per_job[name] += ms
        for name, ms in per_job.items():
            gaps[name].append(ms)
    means = {name: sum(values) / len(timelines) for name, values in gaps.items()}
    ordered = dict(sorted(means.items(), key=lambda item: item[1], reverse=True))
    return TimelineSummary(len(timelines), statistics.fmean(walls), statistics.fmean(apis),
                           ordered, statistics.fmean(slots))


def _slot_ms(spans: list[tuple[str, float]]) -> float:
    """The spans after the job took its API slot, up to its last download (all of them when
    the daemon has no slots)."""
    names = [name for name, _ in spans]
    first = names.index("slot") + 1 if "slot" in names else 0
    last = len(names) - names[::-1].index("download") if "download" in names else len(names)
    return sum(ms for _, ms in spans[first:last])
