"""The benchmark suite of bgcut-watchd: ``python -m bench.run [--quick] [--only NAME]``.

Every benchmark runs the real daemon (``python -m bgcut_watchd run``) as a subprocess against
the real emulator (``python -m bgcut_watchd fake-api``), also a subprocess, and reports ratios
and medians rather than single absolute times (see ``bench/README.md``).
"""
