"""The upload and cost lines of ``explain``: what the upload would carry (predicted by the
daemon's own rules: ``job.normalize.predicted_upload``, ``job.downscale.fit_pixels``), and what
each ``render`` mode would ask for and cost by the ``[budget]`` spend model (indicative, like
the pricing)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bgcut_watchd.config.model import Config, FolderConfig
from bgcut_watchd.job.cost import call_credits
from bgcut_watchd.job.downscale import fit_pixels
from bgcut_watchd.job.naming import upload_name_for
from bgcut_watchd.job.normalize import TARGET_FORMATS, Limits, Plan, decide, predicted_upload
from bgcut_watchd.job.render import fitted_size, master_variant
from bgcut_watchd.job.validate import ValidatedInput


@dataclass(frozen=True)
class Upload:
    """What the daemon would upload for an input: the plan, the converted file's extension
    (None: the input itself, or its scaled copy) and the upload line."""

    plan: Plan
    ext: str | None
    text: str

    def normalise_text(self) -> str:
        return self.plan.describe(TARGET_FORMATS[self.ext]) if self.ext else self.plan.describe()

    def sent_name(self, name: str) -> str:
        return upload_name_for(name, self.ext) if self.ext else name


def predicted(config: Config, folder: FolderConfig, path: Path,
              checked: ValidatedInput) -> Upload:
    """The upload the daemon would make of ``path``, encoded in memory when it converts.
    Raises LocalInputError (``too_large``: no encoding within ``max_input_bytes``; the plan's
    words are in the message)."""
    fit = fit_pixels(checked, folder.variants, enabled=folder.downscale_before_upload)
    limits = Limits(config.daemon.max_input_bytes, config.daemon.max_input_pixels)
    plan, ext, words = predicted_upload(path, checked, limits, fit)
    if ext is not None:
        text = f"converted: {words}"
        if plan.scale_to is not None:
            width, height = plan.scale_to
            text += (f" (scaled down to {width}x{height} first, "
                     f"{checked.width * checked.height - width * height} pixels fewer; "
                     "downscale_before_upload = true)")
    elif fit is not None:
        width, height = fitted_size(checked.width, checked.height, fit)
        text = (f"scaled down to {width}x{height} before the upload ("
                f"{checked.width * checked.height - width * height} pixels fewer; "
                "downscale_before_upload = true)")
    else:
        text = "the input as it is, byte for byte"
    return Upload(plan, ext, text)


def plan_words(folder: FolderConfig, checked: ValidatedInput) -> str:
    """The plan in words when no encoding fits (the PNG named as the first tried)."""
    fit = fit_pixels(checked, folder.variants, enabled=folder.downscale_before_upload)
    return decide(checked, fit).describe()


def cost_lines(config: Config, folder: FolderConfig, checked: ValidatedInput,
               upload: Upload) -> list[tuple[str, str]]:
    """``(step, text)`` lines: the upload, both modes' requests and credits."""
    pixels = checked.width * checked.height
    api = call_credits(config.budget, pixels, folder.variants)
    local = call_credits(config.budget, pixels, (master_variant(folder.variants),))
    count = len(folder.variants)
    lines = [
        ("upload", upload.text),
        ("cost", f'render = "api": one call with {count} variant(s), about {api:.2f} credits'),
        ("", f'render = "local": one call with 1 transparent PNG, {count} variant(s) rendered '
             f"here, about {local:.2f} credits"),
        ("", f'this folder: render = "{folder.render}" (estimates by [budget], indicative)'),
    ]
    cap = config.budget.max_credits_per_day
    if cap > 0:
        lines.append(("", f"daily cap: {cap:g} credits (API work pauses at the cap until 00:00)"))
    return lines
