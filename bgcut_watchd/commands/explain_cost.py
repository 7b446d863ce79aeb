"""The cost lines of ``explain``: what the upload would carry, and what each ``render`` mode
would ask for and cost by the ``[budget]`` spend model (indicative, like the pricing)."""

from __future__ import annotations

from bgcut_watchd.config.model import Config, FolderConfig
from bgcut_watchd.job.cost import call_credits
from bgcut_watchd.job.render import fitted_size, master_variant
from bgcut_watchd.job.validate import ValidatedInput


def cost_lines(config: Config, folder: FolderConfig,
               checked: ValidatedInput) -> list[tuple[str, str]]:
    """``(step, text)`` lines: the upload's pixels, both modes' requests and credits."""
    pixels = checked.width * checked.height
    largest = max(v.max_resolution for v in folder.variants)
    if folder.downscale_before_upload and pixels > largest:
        width, height = fitted_size(checked.width, checked.height, largest)
        upload = (f"scaled down to {width}x{height} before the upload ({pixels - width * height}"
                  f" pixels fewer; downscale_before_upload = true)")
    else:
        upload = "the input as it is, byte for byte"
    api = call_credits(config.budget, pixels, folder.variants)
    local = call_credits(config.budget, pixels, (master_variant(folder.variants),))
    count = len(folder.variants)
    lines = [
        ("upload", upload),
        ("cost", f'render = "api": one call with {count} variant(s), about {api:.2f} credits'),
        ("", f'render = "local": one call with 1 transparent PNG, {count} variant(s) rendered '
             f"here, about {local:.2f} credits"),
        ("", f'this folder: render = "{folder.render}" (estimates by [budget], indicative)'),
    ]
    cap = config.budget.max_credits_per_day
    if cap > 0:
        lines.append(("", f"daily cap: {cap:g} credits (API work pauses at the cap until 00:00)"))
    return lines
