"""Colour arithmetic for the device corpus, written out here so the tests do not trust the
LittleCMS the daemon uses: RGB spaces from their primaries, Bradford adaptation, CIE Lab, ΔE.

Every space is D65 except the ICC connection space (D50); Lab is taken relative to D50, as the
ICC does. ``delta_e`` is CIE76 (ΔE*ab), stricter than CIEDE2000 for the saturated patches used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Vector = tuple[float, float, float]
Matrix = tuple[Vector, Vector, Vector]

D65_XY = (0.3127, 0.3290)
D50_XYZ: Vector = (0.9642, 1.0, 0.8249)
BRADFORD: Matrix = ((0.8951, 0.2664, -0.1614), (-0.7502, 1.7135, 0.0367),
                    (0.0389, -0.0685, 1.0296))
SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
ADOBE_RGB_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
DISPLAY_P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
ADOBE_RGB_GAMMA = 563 / 256


def mat_vec(m: Matrix, v: Sequence[float]) -> Vector:
    return (sum(m[0][i] * v[i] for i in range(3)), sum(m[1][i] * v[i] for i in range(3)),
            sum(m[2][i] * v[i] for i in range(3)))


def mat_mul(a: Matrix, b: Matrix) -> Matrix:
    cols = [mat_vec(a, (b[0][j], b[1][j], b[2][j])) for j in range(3)]
    return ((cols[0][0], cols[1][0], cols[2][0]), (cols[0][1], cols[1][1], cols[2][1]),
            (cols[0][2], cols[1][2], cols[2][2]))


def inverse(m: Matrix) -> Matrix:
    (a, b, c), (d, e, f), (g, h, i) = m
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return (((e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det),
            ((f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det),
            ((d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det))


def xy_to_xyz(x: float, y: float) -> Vector:
    return (x / y, 1.0, (1 - x - y) / y)


def rgb_to_xyz_matrix(primaries: Sequence[tuple[float, float]]) -> Matrix:
    """Linear RGB -> XYZ (D65) for the given primaries."""
    cols = [xy_to_xyz(*p) for p in primaries]
    m: Matrix = ((cols[0][0], cols[1][0], cols[2][0]), (cols[0][1], cols[1][1], cols[2][1]),
                 (cols[0][2], cols[1][2], cols[2][2]))
    scale = mat_vec(inverse(m), xy_to_xyz(*D65_XY))
    return tuple(tuple(m[r][c] * scale[c] for c in range(3)) for r in range(3))  # type: ignore[return-value]


def d65_to_d50() -> Matrix:
    """Bradford chromatic adaptation D65 -> D50."""
    src = mat_vec(BRADFORD, xy_to_xyz(*D65_XY))
    dst = mat_vec(BRADFORD, D50_XYZ)
    diag: Matrix = ((dst[0] / src[0], 0, 0), (0, dst[1] / src[1], 0), (0, 0, dst[2] / src[2]))
    return mat_mul(inverse(BRADFORD), mat_mul(diag, BRADFORD))


def d50_colorants(primaries: Sequence[tuple[float, float]]) -> Matrix:
    """The ICC ``rXYZ``/``gXYZ``/``bXYZ`` tags (columns): the matrix adapted to D50."""
    return mat_mul(d65_to_d50(), rgb_to_xyz_matrix(primaries))


def srgb_decode(v: float) -> float:
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


def srgb_encode(v: float) -> float:
    v = min(1.0, max(0.0, v))
    return v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055


def gamma_decode(gamma: float) -> Callable[[float], float]:
    return lambda v: v ** gamma


def rgb8_to_xyz50(rgb: Sequence[int], primaries: Sequence[tuple[float, float]],
                  decode: Callable[[float], float]) -> Vector:
    linear = [decode(c / 255) for c in rgb]
    return mat_vec(d50_colorants(primaries), linear)


def xyz50_to_srgb8(xyz: Vector) -> tuple[int, int, int]:
    linear = mat_vec(inverse(d50_colorants(SRGB_PRIMARIES)), xyz)
    r, g, b = (round(255 * srgb_encode(c)) for c in linear)
    return r, g, b


def xyz_to_lab(xyz: Vector, white: Vector = D50_XYZ) -> Vector:
    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29
    fx, fy, fz = (f(xyz[i] / white[i]) for i in range(3))
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def lab_to_xyz(lab: Vector, white: Vector = D50_XYZ) -> Vector:
    def g(t: float) -> float:
        return t ** 3 if t > 6 / 29 else 3 * (6 / 29) ** 2 * (t - 4 / 29)
    fy = (lab[0] + 16) / 116
    return (white[0] * g(fy + lab[1] / 500), white[1] * g(fy), white[2] * g(fy - lab[2] / 200))


def srgb8_to_lab(rgb: Sequence[int]) -> Vector:
    return xyz_to_lab(rgb8_to_xyz50(rgb, SRGB_PRIMARIES, srgb_decode))


def delta_e(a: Vector, b: Vector) -> float:
    return float(sum((a[i] - b[i]) ** 2 for i in range(3)) ** 0.5)


def naive_cmyk_to_srgb8(cmyk: Sequence[int]) -> tuple[int, int, int]:
    """An untagged CMYK pixel as everyone converts it: (255 - C)(255 - K)/255 per channel."""
    c, m, y, k = cmyk
    r, g, b = (round((255 - ink) * (255 - k) / 255) for ink in (c, m, y))
    return r, g, b
