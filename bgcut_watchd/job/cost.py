"""What a process call is expected to cost: the ``[budget]`` spend model.

The first variant costs ``first_variant_min_credits`` .. ``first_variant_max_credits``, linear
in the pixels rendered (the input's, capped at the largest ``max_resolution`` asked for) up to
``first_variant_max_at_pixels``; each further variant ``extra_variant_credits``; each
``autocrop`` variant ``autocrop_credits`` more. The emulator charges by the same formula
(``fake_api.credits``, written apart because it imports nothing of the daemon; a test holds the
two to the same numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bgcut_watchd.config.model import BudgetConfig, Variant


def call_credits(budget: BudgetConfig, input_pixels: int, variants: Sequence[Variant]) -> float:
    """The expected credits of one process call asking for ``variants``; 0 for none (the
    formula is ``BudgetConfig.call_credits``, where ``check-config`` prices a folder's
    cheapest call too)."""
    return budget.call_credits(input_pixels, variants)


def pixels_of(path: Path) -> int:
    """The pixel count of the image at ``path`` from its header (nothing decoded); 0 when it
    cannot be read (the estimate then assumes the cheapest resolution)."""
    try:
        with Image.open(path) as image:
            return int(image.width * image.height)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return 0
