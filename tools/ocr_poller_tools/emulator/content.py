"""What each emulated endpoint answers: request bodies checked, deterministic result payloads built."""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import html
import io
import json
import re
import struct
import wave
import zipfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PDF_MAGIC = b"%PDF-"
LARGE_CHUNK_BYTES = 3 * 64 * 1024  # a multiple of 3: each chunk Base64-encodes on its own, without padding
_LARGE_BLOCK = hashlib.shake_256(b"ocr-poller emulator large result").digest(LARGE_CHUNK_BYTES)

RESULT_TYPES = (
    "Text",
    "Pdf",
    "TextAndPdf",
    "Hocr",
    "TextAndHocr",
    "PdfAndHocr",
    "TextAndPdfAndHocr",
    "ImagePNG",
    "JSON",
)
TABLE_RESULT_TYPES = ("Text", "Excel", "Csv", "CsvAndExcel")
TTS_RESULT_TYPES = ("Wav",)


class InvalidSubmission(ValueError):
    """A request body the API would reject with 400; the message says why."""


class Result(NamedTuple):
    """One result of a task: its type as the API spells it and the decoded bytes."""

    type: str
    data: bytes


class _Input(NamedTuple):
    endpoint: str
    payload: bytes  # the decoded image/PDF, or the UTF-8 text to speak
    settings: Mapping[str, Any]


def results_for(endpoint: str, body: Mapping[str, Any]) -> list[Result]:
    """The results a completed task of `endpoint` holds for this request body (raises InvalidSubmission)."""
    field, produce = _ENDPOINTS[endpoint]
    settings = body.get("settings") or {}
    if not isinstance(settings, Mapping):
        raise InvalidSubmission("settings must be a JSON object")
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidSubmission(f"{field} must be a non-empty string")
    payload = value.encode("utf-8") if field == "text" else _decode_base64(field, value)
    return produce(_Input(endpoint, payload, settings))


def large_result(size: int) -> Iterator[bytes]:
    """The deterministic bytes of the `large` fault's result, in chunks of LARGE_CHUNK_BYTES."""
    for index, start in enumerate(range(0, size, LARGE_CHUNK_BYTES)):
        # The chunk number up front keeps chunks distinct: a reordered or repeated chunk changes the digest.
        chunk = index.to_bytes(8, "big") + _LARGE_BLOCK[8:]
        yield chunk[: min(LARGE_CHUNK_BYTES, size - start)]


def png_description(image: bytes) -> str | None:
    """The text of a PNG's tEXt chunk with keyword Description, if it has one."""
    if not image.startswith(PNG_SIGNATURE):
        return None
    offset = len(PNG_SIGNATURE)
    while offset + 8 <= len(image):
        length, kind = struct.unpack_from(">I4s", image, offset)
        data = image[offset + 8 : offset + 8 + length]
        if kind == b"tEXt":
            keyword, _, text = data.partition(b"\0")
            if keyword == b"Description":
                return text.decode("latin-1")
        if kind == b"IEND":
            return None
        offset += 12 + length
    return None


def text_pdf(text: str) -> bytes:
    """A one-page PDF showing `text` (one line per line) in Helvetica."""
    lines = text.splitlines() or [""]
    shown = " T* ".join(f"({_pdf_string(line)}) Tj" for line in lines)
    stream = f"BT /F1 12 Tf 14 TL 72 720 Td {shown} ET".encode("cp1252", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
    ]
    document = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(document))
        document += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(document)
    document += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    document += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    document += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(document)


def pdf_text(document: bytes) -> str | None:
    """The lines shown by `(...) Tj` operators of an uncompressed PDF, such as text_pdf's, if any."""
    shown = re.findall(rb"\(((?:[^()\\]|\\.)*)\)\s*Tj", document)
    if not shown:
        return None
    return "\n".join(re.sub(rb"\\(.)", rb"\1", line).decode("cp1252", "replace") for line in shown)


def _pdf_string(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _decode_base64(field: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise InvalidSubmission(f"{field} is not valid Base64: {exc}") from exc


def _setting(settings: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = settings.get(name) or default
    if value not in allowed:
        raise InvalidSubmission(f"settings.{name} must be one of {', '.join(allowed)}")
    return str(value)


def _recognized_text(source: _Input) -> str:
    """The label a PNG carries in its Description, the text of a simple PDF, else a line naming the input."""
    described = png_description(source.payload) or pdf_text(source.payload)
    if described is not None:
        return described
    return f"Emulated {source.endpoint} result for {len(source.payload)} bytes of input"


def _recognition(default_type: str) -> Callable[[_Input], list[Result]]:
    def produce(source: _Input) -> list[Result]:
        result_type = _setting(source.settings, "resultType", RESULT_TYPES, default_type)
        return _recognized(source, _recognized_text(source), result_type)

    return produce


def _recognized(source: _Input, text: str, result_type: str) -> list[Result]:
    """One result per part of a (possibly composite) result type such as TextAndPdfAndHocr, in that order."""
    makers: dict[str, Callable[[], Result]] = {
        "Text": lambda: Result("Text", text.encode("utf-8")),
        # A searchable PDF of a PDF keeps its pages: the submitted document stands in for it.
        "Pdf": lambda: Result(
            "Pdf", source.payload if source.payload.startswith(PDF_MAGIC) else text_pdf(text)
        ),
        "Hocr": lambda: Result("Hocr", _hocr(text)),
        "ImagePNG": lambda: Result("ImagePNG", source.payload),
        "JSON": lambda: Result("JSON", json.dumps({"text": text}).encode("utf-8")),
    }
    return [makers[part]() for part in result_type.split("And")]


def _regions(source: _Input) -> list[Result]:
    """One set of results per requested region, as the API answers RecognizeRegions."""
    result_type = _setting(source.settings, "resultType", RESULT_TYPES, "Text")
    regions = source.settings.get("regions") or [{}]
    if not isinstance(regions, list):
        raise InvalidSubmission("settings.regions must be a list")
    text = _recognized_text(source)
    return [
        result
        for number, _ in enumerate(regions, start=1)
        for result in _recognized(source, f"{text} (region {number})", result_type)
    ]


def _table(source: _Input) -> list[Result]:
    result_type = _setting(source.settings, "resultTypeTable", TABLE_RESULT_TYPES, "Text")
    text = _recognized_text(source)
    rows = [line.split() for line in text.splitlines()]
    makers: dict[str, Callable[[], Result]] = {
        "Text": lambda: Result("Text", text.encode("utf-8")),
        "Csv": lambda: Result("Csv", _csv(rows)),
        "Excel": lambda: Result("Excel", _xlsx(rows)),
    }
    return [makers[part]() for part in result_type.split("And")]


def _invoice(source: _Input) -> list[Result]:
    lines = _recognized_text(source).splitlines() or [""]
    invoice = {
        "supplier_name": lines[0],
        "invoice_text": "\n".join(lines),
        "issue_date": "",
        "due_date": "",
        "total_amount": "",
    }
    return [Result("JSON", json.dumps(invoice, ensure_ascii=False).encode("utf-8"))]


def _font(source: _Input) -> list[Result]:
    return [Result("Text", b"Helvetica")]


def _detect_regions(source: _Input) -> list[Result]:
    """Rectangles [left, top, right, bottom] as JSON; the whole image when its size is known."""
    is_png = source.payload.startswith(PNG_SIGNATURE) and source.payload[12:16] == b"IHDR"
    rectangles = [[0, 0, *struct.unpack_from(">II", source.payload, 16)]] if is_png else []
    return [Result("Other", json.dumps(rectangles).encode("utf-8"))]


def _image_processing(source: _Input) -> list[Result]:
    return [Result("ImagePNG", source.payload)]


def _speech(source: _Input) -> list[Result]:
    _setting(source.settings, "resultType", TTS_RESULT_TYPES, "Wav")
    return [Result("WavFile", _wav())]


def _hocr(text: str) -> bytes:
    lines = "".join(
        f'<span class="ocr_line" id="line_1_{number}">{html.escape(line)}</span>'
        for number, line in enumerate(text.splitlines() or [""], start=1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>OCR</title>'
        '<meta name="ocr-system" content="ocr-poller emulator"/>'
        '<meta name="ocr-capabilities" content="ocr_page ocr_line"/></head>'
        f'<body><div class="ocr_page" id="page_1">{lines}</div></body></html>\n'
    ).encode()


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _xlsx(rows: list[list[str]]) -> bytes:
    """A minimal valid Office Open XML workbook: one sheet of inline strings."""
    cells = "".join(
        f'<row r="{r}">'
        + "".join(
            f'<c r="{_column(c)}{r}" t="inlineStr"><is><t>{html.escape(value)}</t></is></c>'
            for c, value in enumerate(row)
        )
        + "</row>"
        for r, row in enumerate(rows, start=1)
    )
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    package_rels = "http://schemas.openxmlformats.org/package/2006/relationships"
    office_rels = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    content_types = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    relationships_type = "application/vnd.openxmlformats-package.relationships+xml"
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            f'<Default Extension="rels" ContentType="{relationships_type}"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{content_types}.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{content_types}.worksheet+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{package_rels}">'
            f'<Relationship Id="rId1" Type="{office_rels}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{main}" xmlns:r="{office_rels}">'
            '<sheets><sheet name="Table" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{package_rels}">'
            f'<Relationship Id="rId1" Type="{office_rels}/worksheet" Target="worksheets/sheet1.xml"/>'
            "</Relationships>"
        ),
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{main}"><sheetData>{cells}</sheetData></worksheet>',
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, xml in parts.items():
            # A fixed timestamp keeps the bytes (and so the sha256) the same on every run.
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + xml)
    return out.getvalue()


def _column(index: int) -> str:
    """Spreadsheet column letters of a 0-based index: A, ..., Z, AA, ..."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


def _wav() -> bytes:
    """A tenth of a second of silence: 8 kHz, mono, 16-bit PCM."""
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\0\0" * 800)
    return out.getvalue()


# Endpoint -> (the body field holding the input, how its results are made).
_ENDPOINTS: dict[str, tuple[str, Callable[[_Input], list[Result]]]] = {
    "RecognizeImage": ("image", _recognition("Text")),
    "RecognizeLabel": ("image", _recognition("Text")),
    "RecognizePdf": ("image", _recognition("Text")),
    "RecognizeReceipt": ("image", _recognition("Text")),
    "RecognizeRegions": ("image", _regions),
    "RecognizeTable": ("image", _table),
    "RecognizeAndParseInvoice": ("image", _invoice),
    "IdentifyFont": ("image", _font),
    "DetectRegions": ("image", _detect_regions),
    "BinarizeImage": ("image", _image_processing),
    "DeskewImage": ("image", _image_processing),
    "DewarpImage": ("image", _image_processing),
    "UpscaleImage": ("image", _image_processing),
    "DjVu2PDF": ("image", _recognition("Pdf")),
    "ConvertTextToSpeech": ("text", _speech),
}
ENDPOINTS: tuple[str, ...] = tuple(_ENDPOINTS)
