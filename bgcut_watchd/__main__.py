"""``python -m bgcut_watchd`` is the same as the ``bgcut-watchd`` command."""

import sys

from bgcut_watchd.cli import main

sys.exit(main())
