"""ICC profiles written from numbers: a matrix/TRC RGB display profile (ICC v2) from primaries,
a white point and a tone curve.

A HEIC may declare its colours only as ``nclx`` (ITU-T H.273 codes: primaries, transfer
characteristics), without an ICC profile; ``colour`` turns such a declaration into a profile
made here, so it is converted to sRGB by LittleCMS exactly like an ICC-tagged file. The test
suite's device corpus writes its Adobe RGB and Display P3 profiles with the same builder (its
expected colours are computed independently, in ``tests/devices/colour.py``).

The colorants are the primaries' XYZ adapted to the ICC connection space's D50 white by
Bradford; the profile's ``wtpt`` is D50, as ICC v4 asks of display profiles.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Final

Vector = tuple[float, float, float]
Matrix = tuple[Vector, Vector, Vector]
Chromaticity = tuple[float, float]

D65_XY: Final = (0.3127, 0.3290)
D50_XYZ: Final[Vector] = (0.9642, 1.0, 0.8249)
_BRADFORD: Final[Matrix] = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367),
                            (0.0389, -0.0685, 1.0296))
_TABLE_ENTRIES: Final = 1024


def _mat_vec(m: Matrix, v: Sequence[float]) -> Vector:
    return (sum(m[0][i] * v[i] for i in range(3)), sum(m[1][i] * v[i] for i in range(3)),
            sum(m[2][i] * v[i] for i in range(3)))


def _mat_mul(a: Matrix, b: Matrix) -> Matrix:
    cols = [_mat_vec(a, (b[0][j], b[1][j], b[2][j])) for j in range(3)]
    return _from_columns(cols)


def _from_columns(cols: Sequence[Vector]) -> Matrix:
    return ((cols[0][0], cols[1][0], cols[2][0]), (cols[0][1], cols[1][1], cols[2][1]),
            (cols[0][2], cols[1][2], cols[2][2]))


def _inverse(m: Matrix) -> Matrix:
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return (((e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det),
            ((f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det),
            ((d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det))


def _xy_to_xyz(xy: Chromaticity) -> Vector:
    x, y = xy
    return (x / y, 1.0, (1 - x - y) / y)


def d50_colorants(primaries: Sequence[Chromaticity], white: Chromaticity = D65_XY) -> Matrix:
    """Linear RGB -> XYZ (D50) for ``primaries`` under ``white``: the ``rXYZ``, ``gXYZ``,
    ``bXYZ`` tags are its columns. Raises ZeroDivisionError for degenerate primaries."""
    m = _from_columns([_xy_to_xyz(p) for p in primaries])
    scale = _mat_vec(_inverse(m), _xy_to_xyz(white))
    to_xyz = _from_columns([(m[0][c] * scale[c], m[1][c] * scale[c], m[2][c] * scale[c])
                            for c in range(3)])
    source = _mat_vec(_BRADFORD, _xy_to_xyz(white))
    target = _mat_vec(_BRADFORD, D50_XYZ)
    diagonal: Matrix = ((target[0] / source[0], 0, 0), (0, target[1] / source[1], 0),
                        (0, 0, target[2] / source[2]))
    adapt = _mat_mul(_inverse(_BRADFORD), _mat_mul(diagonal, _BRADFORD))
    return _mat_mul(adapt, to_xyz)


def s15(value: float) -> bytes:
    """An ICC s15Fixed16Number."""
    return struct.pack(">i", round(value * 65536))


def xyz_tag(xyz: Vector) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + b"".join(s15(v) for v in xyz)


def desc_tag(text: str) -> bytes:
    """An ICC v2 ``textDescriptionType`` (ASCII only)."""
    ascii_text = text.encode("ascii", "replace") + b"\x00"
    return (b"desc\x00\x00\x00\x00" + struct.pack(">I", len(ascii_text)) + ascii_text
            + b"\x00" * 8 + b"\x00\x00\x00" + b"\x00" * 67)


def text_tag(text: str) -> bytes:
    return b"text\x00\x00\x00\x00" + text.encode("ascii", "replace") + b"\x00"


def gamma_curve(gamma: float) -> bytes:
    """A pure power curve (``curv`` with one entry)."""
    return b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(gamma * 256))


def table_curve(decode: Callable[[float], float], entries: int = _TABLE_ENTRIES) -> bytes:
    """A sampled curve: ``decode`` maps encoded 0..1 to linear 0..1."""
    values = [round(65535 * min(1.0, max(0.0, decode(i / (entries - 1)))))
              for i in range(entries)]
    return b"curv\x00\x00\x00\x00" + struct.pack(f">I{entries}H", entries, *values)


def profile_bytes(device_class: bytes, space: bytes, pcs: bytes,
                  tags: Sequence[tuple[bytes, bytes]]) -> bytes:
    """A whole ICC v2.1 profile: header, tag table, tags (each padded to 4 bytes)."""
    offset = 128 + 4 + 12 * len(tags)
    entries, blobs = [], []
    for signature, data in tags:
        entries.append(struct.pack(">4sII", signature, offset, len(data)))
        padded = data + b"\x00" * (-len(data) % 4)
        blobs.append(padded)
        offset += len(padded)
    header = bytearray(128)
    struct.pack_into(">I4sI4s4s4s", header, 0, offset, b"lcms", 0x02100000, device_class,
                     space, pcs)
    header[36:40] = b"acsp"
    header[68:80] = b"".join(s15(v) for v in D50_XYZ)
    return (bytes(header) + struct.pack(">I", len(tags)) + b"".join(entries)
            + b"".join(blobs))


def rgb_profile(name: str, primaries: Sequence[Chromaticity], curve: bytes,
                white: Chromaticity = D65_XY) -> bytes:
    """A matrix/TRC RGB display profile (ICC v2) named ``name``, the same ``curve`` for the
    three channels. Raises ZeroDivisionError for degenerate primaries."""
    m = d50_colorants(primaries, white)
    columns = [(m[0][i], m[1][i], m[2][i]) for i in range(3)]
    return profile_bytes(b"mntr", b"RGB ", b"XYZ ", [
        (b"desc", desc_tag(name)), (b"cprt", text_tag("no copyright, use freely")),
        (b"wtpt", xyz_tag(D50_XYZ)), (b"rXYZ", xyz_tag(columns[0])),
        (b"gXYZ", xyz_tag(columns[1])), (b"bXYZ", xyz_tag(columns[2])),
        (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve),
    ])
