"""Colour: is an embedded ICC profile sRGB, and turning any decoded page into sRGB.

The API (and the emulator) take every pixel as sRGB and return outputs without a profile, so a
picture in Adobe RGB, Display P3 (phones) or a CMYK press profile would come back washed out or
shifted. A profile is sRGB when it maps a grid of test colours onto themselves (within
``_SAME_LEVELS``): that recognises every sRGB profile in the wild (``sRGB IEC61966-2.1``, ``sRGB
built-in``, v4 variants...) whatever its name says. Conversions use LittleCMS (Pillow's
``ImageCms``), relative colorimetric, without black point compensation: colours that sRGB can
show keep their values, which is what "true colours" promises.

Modes without a profile: CMYK uses Pillow's plain conversion (the usual result for an untagged
CMYK file; a YCCK JPEG is decoded to CMYK by libjpeg first), YCbCr and LAB their standard
definitions. A damaged profile is ignored, as browsers do: the pixels are then taken as sRGB.

A HEIC may declare its colours only as ``nclx`` (ITU-T H.273 codes, no ICC profile): pi-heif
reports them as ``info["nclx_profile"]``. :func:`declared_icc` turns such a declaration into a
matrix/TRC profile (``job.icc``: the declared primaries and white, the declared transfer curve)
named ``<space> (nclx)``, so the picture is converted like an ICC-tagged one; a declaration of
sRGB / BT.709 primaries with the sRGB (or BT.709) curve, or an unspecified one, gives none: the
pixels are sRGB already. A transfer the daemon does not model (PQ, HLG: HDR) is taken as the sRGB
curve, the primaries still converted.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Iterator, Mapping
from itertools import product
from typing import Any, Final

from PIL import Image, ImageChops, ImageCms

from bgcut_watchd.job.icc import gamma_curve, rgb_profile, table_curve

_INTENT: Final = ImageCms.Intent.RELATIVE_COLORIMETRIC
_SAME_LEVELS: Final = 2  # of 255: what rounding inside LittleCMS may move an identity
_PROFILE_MODES: Final = {"RGB": ("RGB", "RGBA", "P", "PA"), "GRAY": ("L", "LA", "1"),
                         "CMYK": ("CMYK",)}


_SRGB_PRIMARIES: Final = frozenset({1, 2})  # BT.709 (= sRGB), unspecified
_SRGB_TRANSFERS: Final = frozenset({1, 2, 6, 13, 14, 15})  # BT.709 family, unspecified, sRGB
_PRIMARIES_NAMES: Final = {1: "BT.709", 4: "BT.470M", 5: "BT.601 (625)", 6: "BT.601 (525)",
                           7: "SMPTE 240M", 9: "BT.2020", 10: "XYZ", 11: "DCI-P3",
                           12: "Display P3", 22: "EBU 3213"}
_CHROMATICITY_KEYS: Final = ("red", "green", "blue")


def _srgb_decode(value: float) -> float:
    return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4


def _bt709_decode(value: float) -> float:
    return value / 4.5 if value < 0.081 else ((value + 0.099) / 1.099) ** (1 / 0.45)


_TRANSFER_CURVES: Final[dict[int, Callable[[], bytes]]] = {
    4: lambda: gamma_curve(2.2), 5: lambda: gamma_curve(2.8), 8: lambda: gamma_curve(1.0),
    1: lambda: table_curve(_bt709_decode), 6: lambda: table_curve(_bt709_decode),
    14: lambda: table_curve(_bt709_decode), 15: lambda: table_curve(_bt709_decode),
}


def declared_icc(info: Mapping[Any, Any]) -> bytes | None:
    """The ICC profile a decoded picture's ``info`` declares: its embedded one, else one made
    from a HEIC's ``nclx`` colours when they are not sRGB (:func:`nclx_icc`). Raises nothing."""
    icc = info.get("icc_profile")
    if icc:
        return bytes(icc)
    nclx = info.get("nclx_profile")
    return nclx_icc(nclx) if isinstance(nclx, Mapping) else None


def nclx_icc(nclx: Mapping[str, Any]) -> bytes | None:
    """A matrix/TRC profile for an ``nclx`` declaration (pi-heif's keys), or None when it says
    sRGB (or is unusable: then the pixels are taken as sRGB, as without a declaration)."""
    primaries, transfer = (value if isinstance(value := nclx.get(key), int) else -1
                           for key in ("color_primaries", "transfer_characteristics"))
    if primaries in _SRGB_PRIMARIES and transfer in _SRGB_TRANSFERS:
        return None
    try:
        chromaticities = [(float(nclx[f"color_primary_{c}_x"]), float(nclx[f"color_primary_{c}_y"]))
                          for c in _CHROMATICITY_KEYS]
        white = (float(nclx["color_primary_white_x"]), float(nclx["color_primary_white_y"]))
        if not all(math.isfinite(v) and v > 0 for xy in (*chromaticities, white) for v in xy):
            return None
        curve = _TRANSFER_CURVES.get(transfer, lambda: table_curve(_srgb_decode))()
        name = _PRIMARIES_NAMES.get(primaries, f"primaries {primaries}")
        return rgb_profile(f"{name} (nclx)", chromaticities, curve, white)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


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


def colour_steps(icc: bytes | None, mode: str, *, ycck: bool = False) -> Iterator[str]:
    """The colour conversion in words, for the log and ``explain`` (nothing when sRGB);
    ``ycck``: the CMYK pixels were stored as YCCK."""
    if usable_profile(icc, mode) is not None:
        assert icc is not None
        yield f"{profile_name(icc)} → sRGB"
    elif mode == "CMYK":
        yield f"{'YCCK' if ycck else 'CMYK'} (no profile) → sRGB"
    elif mode in ("LAB", "YCbCr"):
        yield f"{mode} → sRGB"
