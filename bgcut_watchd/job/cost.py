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
    """The expected credits of one process call asking for ``variants``; 0 for none."""
    if not variants:
        return 0.0
    pixels = min(input_pixels, max(v.max_resolution for v in variants))
    share = min(1.0, pixels / budget.first_variant_max_at_pixels)
    low, high = budget.first_variant_min_credits, budget.first_variant_max_credits
    extra = budget.extra_variant_credits * (len(variants) - 1)
    crops = budget.autocrop_credits * sum(1 for v in variants if v.autocrop)
    return round(low + (high - low) * share + extra + crops, 6)


def pixels_of(path: Path) -> int:
    """The pixel count of the image at ``path`` from its header (nothing decoded); 0 when it
    cannot be read (the estimate then assumes the cheapest resolution)."""
    try:
        with Image.open(path) as image:
            return int(image.width * image.height)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return 0
