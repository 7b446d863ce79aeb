"""Colour: is an embedded ICC profile sRGB, and turning any decoded page into sRGB.

The API (and the emulator) take every pixel as sRGB and return outputs without a profile, so a
picture in Adobe RGB, Display P3 (phones) or a CMYK press profile would come back washed out or
shifted. A profile is sRGB when it maps a grid of test colours onto themselves (within
``_SAME_LEVELS``): that recognises every sRGB profile in the wild (``sRGB IEC61966-2.1``, ``sRGB
built-in``, v4 variants...) whatever its name says. Conversions use LittleCMS (Pillow's
``ImageCms``), relative colorimetric, without black point compensation: colours that sRGB can
show keep their values, which is what "true colours" promises.

Modes without a profile: CMYK uses Pillow's plain conversion (the usual result for an untagged
CMYK file), YCbCr and LAB their standard definitions. A damaged profile is ignored, as browsers
do: the pixels are then taken as sRGB.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from itertools import product
from typing import Final

from PIL import Image, ImageChops, ImageCms

_INTENT: Final = ImageCms.Intent.RELATIVE_COLORIMETRIC
_SAME_LEVELS: Final = 2  # of 255: what rounding inside LittleCMS may move an identity
_PROFILE_MODES: Final = {"RGB": ("RGB", "RGBA", "P", "PA"), "GRAY": ("L", "LA", "1"),
                         "CMYK": ("CMYK",)}


def _profile(icc: bytes) -> ImageCms.ImageCmsProfile | None:
    """The parsed profile, or None when it is damaged (then it is ignored)."""
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError):
        return None


def _space(profile: ImageCms.ImageCmsProfile) -> str:
    return str(profile.profile.xcolor_space).strip().upper()


def profile_name(icc: bytes) -> str:
    """The profile's own description (``Adobe RGB (1998)``, ``Display P3``...)."""
    profile = _profile(icc)
    name = str(profile.profile.profile_description or "").strip() if profile else ""
    return name or "an embedded ICC profile"


def usable_profile(icc: bytes | None, mode: str) -> ImageCms.ImageCmsProfile | None:
    """The profile if it describes pixels of ``mode`` and is not already sRGB; else None (the
    pixels are sRGB, or the profile is damaged or does not fit them: ignored)."""
    if not icc:
        return None
    profile = _profile(icc)
    if profile is None or mode not in _PROFILE_MODES.get(_space(profile), ()):
        return None
    return None if _maps_onto_itself(profile) else profile


def _maps_onto_itself(profile: ImageCms.ImageCmsProfile) -> bool:
    """True when converting a grid of test colours from ``profile`` to sRGB changes none."""
    space = _space(profile)
    if space not in ("RGB", "GRAY"):
        return False
    mode = "RGB" if space == "RGB" else "L"
    sample = _test_colours(mode)
    try:
        converted = ImageCms.profileToProfile(sample, profile, ImageCms.createProfile("sRGB"),
                                              renderingIntent=_INTENT, outputMode="RGB")
    except ImageCms.PyCMSError:
        return False
    assert converted is not None  # not in place
    extrema = ImageChops.difference(sample.convert("RGB"), converted).getextrema()
    return all(high <= _SAME_LEVELS for _, high in extrema)  # type: ignore[misc]


def _test_colours(mode: str) -> Image.Image:
    levels = (0, 32, 96, 160, 224, 255)
    if mode == "L":
        return Image.frombytes("L", (len(levels), 1), bytes(levels))
    cells = list(product(levels, repeat=3))
    return Image.frombytes("RGB", (len(cells), 1), bytes(v for cell in cells for v in cell))


def to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """``image`` in sRGB: RGB or RGBA (L or LA when it was grey and stays grey). A profile
    LittleCMS parses but cannot apply is ignored, as a browser would. Raises what Pillow
    raises for the plain conversions (run it through ``pillow_step``)."""
    mode = image.mode
    profile = usable_profile(icc, mode)
    if mode == "LAB" and profile is None:
        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
    if profile is not None:
        with contextlib.suppress(ImageCms.PyCMSError):
            return _through_profile(image, profile)
    if mode in ("CMYK", "YCbCr", "LAB"):
        return image.convert("RGB")
    return image


def _through_profile(image: Image.Image, profile: ImageCms.ImageCmsProfile) -> Image.Image:
    """Convert with LittleCMS; an alpha channel (or a palette's transparency) is set aside and
    put back unchanged."""
    if image.mode in ("P", "PA"):
        keep_alpha = image.mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if keep_alpha else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
    if alpha is not None:
        image = image.convert(image.mode[:-1])  # RGBA -> RGB, LA -> L
    converted = ImageCms.profileToProfile(image, profile, ImageCms.createProfile("sRGB"),
                                          renderingIntent=_INTENT, outputMode="RGB")
    assert converted is not None  # not in place
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def colour_steps(icc: bytes | None, mode: str) -> Iterator[str]:
    """The colour conversion in words, for the log and ``explain`` (nothing when sRGB)."""
    if usable_profile(icc, mode) is not None:
        assert icc is not None
        yield f"{profile_name(icc)} → sRGB"
    elif mode == "CMYK":
        yield "CMYK (no profile) → sRGB"
    elif mode in ("LAB", "YCbCr"):
        yield f"{mode} → sRGB"
