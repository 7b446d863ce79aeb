"""``python -m bgcut_watchd.fake_api``: run the emulator in the foreground."""

from __future__ import annotations

import sys

from bgcut_watchd.fake_api.cli import main

if __name__ == "__main__":
    sys.exit(main())
