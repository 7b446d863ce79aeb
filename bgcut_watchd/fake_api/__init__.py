"""The built-in BackgroundCut API v3 emulator (``bgcut-watchd fake-api``).

A real HTTP/1.1 server on loopback implementing api-v3.md: uploads stored on disk, the API key
checked, every variant rendered with Pillow, and faults injected on demand (latency, 5xx, 429
with Retry-After, resets, truncated downloads, 404 after upload, downloads answered 200 with an
HTML page or with a cut body whose Content-Length matches it, answers dribbled byte by byte, 401
and 402 switches), with a request log tests can read. Importing this package starts nothing.

Modules: ``options`` (the knobs), ``server`` (``FakeApiServer``), ``handler`` (HTTP plumbing),
``app`` (endpoint logic), ``control`` (``/_control/``), ``faults``, ``render``, ``variants``
(process body validation), ``credits`` (the pricing and the balance), ``storage``, ``paths``,
``reqlog``, ``prerender`` (the benchmark mode's renderer), ``samples`` (demo and benchmark images),
``cli``.
"""

from __future__ import annotations

from bgcut_watchd.fake_api.options import FakeApiOptions
from bgcut_watchd.fake_api.reqlog import RequestLogEntry
from bgcut_watchd.fake_api.server import FakeApiServer

__all__ = ["FakeApiOptions", "FakeApiServer", "RequestLogEntry"]
