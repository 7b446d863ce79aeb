"""The metadata the studio owns: copyright, artist, capture date and description.

With ``keep_metadata = true`` (per folder, the default) the outputs carry these four fields of
their input; the API returns outputs without any. They are read from the input's EXIF, then its
XMP, then its IPTC (the first that has a field wins), and written into each output as EXIF and
XMP by ``job.stamp`` without touching its pixels. Nothing else is carried: no GPS position, no
camera serial number, no orientation (the outputs are upright), no thumbnail.

=============  ====================  =========================  ==============================
field          EXIF                  XMP                        IPTC (read only)
=============  ====================  =========================  ==============================
copyright      Copyright (0x8298)    dc:rights                  2:116 Copyright Notice
artist         Artist (0x013B)       dc:creator                 2:80 By-line
captured       DateTimeOriginal      exif:DateTimeOriginal,     2:55 Date Created +
               (+ OffsetTimeOriginal) photoshop:DateCreated     2:60 Time Created
description    ImageDescription      dc:description             2:120 Caption/Abstract
=============  ====================  =========================  ==============================

EXIF text is written as UTF-8 (what exiftool and every current viewer read; the standard's
7-bit ASCII would lose a ``©``), XMP as the standard's UTF-8. Reading never fails: a damaged
block is skipped, as a viewer would.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final, cast
from xml.sax.saxutils import escape

from PIL import Image, ImageFile, IptcImagePlugin

from bgcut_watchd.job.decoding import exif_of

_EXIF_IFD: Final = 0x8769
_COPYRIGHT, _ARTIST, _DESCRIPTION = 0x8298, 0x013B, 0x010E
_DATE_ORIGINAL, _OFFSET_ORIGINAL = 0x9003, 0x9011
_MAX_FIELD_CHARS: Final = 2000  # a JPEG APP1 segment holds 64 KiB, all fields together
_NS: Final = {"dc": "http://purl.org/dc/elements/1.1/",
              "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
              "photoshop": "http://ns.adobe.com/photoshop/1.0/",
              "exif": "http://ns.adobe.com/exif/1.0/", "xmp": "http://ns.adobe.com/xap/1.0/"}
_XMP_DATES: Final = ("exif:DateTimeOriginal", "photoshop:DateCreated", "xmp:CreateDate")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?)?"
                       r"(Z|[+-]\d{2}:\d{2})?")
_EXIF_DATE = re.compile(r"\d{4}:\d{2}:\d{2} \d{2}:\d{2}:\d{2}")


@dataclass(frozen=True)
class StudioMetadata:
    """The four fields carried to the outputs; None when the input has none.

    ``captured`` is in EXIF's form (``2026:03:14 09:26:53``), ``offset`` its UTC offset
    (``+01:00``) when known.
    """

    copyright: str | None = None
    artist: str | None = None
    captured: str | None = None
    offset: str | None = None
    description: str | None = None

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def merged(self, other: StudioMetadata) -> StudioMetadata:
        """Each field of ``self``, or ``other``'s where ``self`` has none."""
        return StudioMetadata(**{f.name: getattr(self, f.name) or getattr(other, f.name)
                                 for f in fields(self)})


def read_metadata(path: Path) -> StudioMetadata:
    """The studio's fields of the image at ``path`` (headers only, no decode). Raises nothing:
    an unreadable file or block gives empty fields."""
    try:
        with Image.open(path) as image:
            return metadata_of(image)
    except Exception:  # any image we cannot read has nothing to carry
        return StudioMetadata()


def metadata_of(image: Image.Image) -> StudioMetadata:
    """The studio's fields of an opened image: EXIF, then XMP, then IPTC. Raises nothing."""
    found = StudioMetadata()
    for source in (_from_exif, _from_xmp, _from_iptc):
        try:
            found = found.merged(source(image))
        except Exception:  # noqa: S112 - a damaged block is skipped, as a viewer would
            continue
    return found


def _text(value: object) -> str | None:
    """A tag's value as text: EXIF ASCII that is really UTF-8 is read as such."""
    if isinstance(value, bytes):
        raw = value
    elif isinstance(value, str):
        raw = value.encode("latin-1", "replace")  # Pillow decodes EXIF ASCII as Latin-1
    else:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = text.replace("\x00", " ").strip()
    return text[:_MAX_FIELD_CHARS] or None


def _from_exif(image: Image.Image) -> StudioMetadata:
    exif = exif_of(image)  # never a decode: this runs once per output
    sub = exif.get_ifd(_EXIF_IFD)
    captured = _text(sub.get(_DATE_ORIGINAL))
    return StudioMetadata(
        copyright=_text(exif.get(_COPYRIGHT)), artist=_text(exif.get(_ARTIST)),
        captured=captured if captured and _EXIF_DATE.fullmatch(captured) else None,
        offset=_text(sub.get(_OFFSET_ORIGINAL)), description=_text(exif.get(_DESCRIPTION)))


def _xmp_raw(image: Image.Image) -> bytes | None:
    for key in ("xmp", "XML:com.adobe.xmp"):
        value = image.info.get(key)
        if isinstance(value, str):
            return value.encode("utf-8")
        if isinstance(value, bytes) and value:
            return value
    return None


def _from_xmp(image: Image.Image) -> StudioMetadata:
    raw = _xmp_raw(image)
    if raw is None:
        return StudioMetadata()
    root = ET.fromstring(raw.strip(b"\x00 \r\n\t"))  # noqa: S314 - no external entities
    captured, offset = None, None
    for name in _XMP_DATES:
        captured, offset = _exif_date(_xmp_value(root, name))
        if captured:
            break
    return StudioMetadata(copyright=_xmp_value(root, "dc:rights"),
                          artist=_xmp_value(root, "dc:creator"), captured=captured,
                          offset=offset, description=_xmp_value(root, "dc:description"))


def _xmp_value(root: ET.Element, name: str) -> str | None:
    """A property as element text, attribute, or the first ``rdf:li`` of its array."""
    prefix, local = name.split(":")
    tag = f"{{{_NS[prefix]}}}{local}"
    for description in root.iter(f"{{{_NS['rdf']}}}Description"):
        if tag in description.attrib:
            return _text(description.attrib[tag].encode("utf-8"))
        element = description.find(tag)
        if element is None:
            continue
        item = element.find(".//rdf:li", _NS)
        value = (item if item is not None else element).text
        return _text(value.encode("utf-8")) if value else None
    return None


def _exif_date(iso: str | None) -> tuple[str | None, str | None]:
    """``2026-03-14T09:26:53+01:00`` -> (``2026:03:14 09:26:53``, ``+01:00``)."""
    found = _ISO_DATE.match(iso or "")
    if found is None:
        return None, None
    year, month, day, hour, minute, second, zone = found.groups()
    time = f"{hour or '00'}:{minute or '00'}:{second or '00'}"
    return f"{year}:{month}:{day} {time}", ("+00:00" if zone == "Z" else zone)


def _from_iptc(image: Image.Image) -> StudioMetadata:
    info = IptcImagePlugin.getiptcinfo(cast(ImageFile.ImageFile, image)) or {}

    def field(record: int) -> str | None:
        value = info.get((2, record))
        return _text(value[0] if isinstance(value, list) and value else value)

    date, time = field(55), field(60) or "000000"
    captured = None
    if date and re.fullmatch(r"\d{8}", date) and re.match(r"\d{6}", time):
        captured = f"{date[:4]}:{date[4:6]}:{date[6:]} {time[:2]}:{time[2:4]}:{time[4:6]}"
    return StudioMetadata(copyright=field(116), artist=field(80), captured=captured,
                          description=field(120))


def exif_block(meta: StudioMetadata) -> bytes:
    """The fields as an EXIF block: TIFF structure, without the ``Exif\\0\\0`` prefix."""
    exif = Image.Exif()
    for tag, value in ((_COPYRIGHT, meta.copyright), (_ARTIST, meta.artist),
                       (_DESCRIPTION, meta.description)):
        if value:
            exif[tag] = value.encode("utf-8")
    if meta.captured:
        sub = exif.get_ifd(_EXIF_IFD)
        sub[_DATE_ORIGINAL] = meta.captured
        if meta.offset:
            sub[_OFFSET_ORIGINAL] = meta.offset
    data = exif.tobytes()
    return data[6:] if data.startswith(b"Exif\x00\x00") else data


def xmp_packet(meta: StudioMetadata) -> bytes:
    """The fields as an XMP packet (UTF-8)."""
    props: list[str] = []
    if meta.copyright:
        props.append(f"<dc:rights><rdf:Alt><rdf:li xml:lang=\"x-default\">"
                     f"{escape(meta.copyright)}</rdf:li></rdf:Alt></dc:rights>")
    if meta.artist:
        props.append(f"<dc:creator><rdf:Seq><rdf:li>{escape(meta.artist)}</rdf:li></rdf:Seq>"
                     "</dc:creator>")
    if meta.description:
        props.append(f"<dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">"
                     f"{escape(meta.description)}</rdf:li></rdf:Alt></dc:description>")
    if meta.captured:
        iso = meta.captured.replace(":", "-", 2).replace(" ", "T") + (meta.offset or "")
        props.append(f"<exif:DateTimeOriginal>{iso}</exif:DateTimeOriginal>"
                     f"<photoshop:DateCreated>{iso}</photoshop:DateCreated>")
    names = " ".join(f'xmlns:{p}="{_NS[p]}"' for p in ("dc", "exif", "photoshop"))
    return ("<?xpacket begin=\"\ufeff\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>"
            "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">"
            f"<rdf:RDF xmlns:rdf=\"{_NS['rdf']}\"><rdf:Description rdf:about=\"\" {names}>"
            + "".join(props) + "</rdf:Description></rdf:RDF></x:xmpmeta>"
            "<?xpacket end=\"w\"?>").encode("utf-8")
