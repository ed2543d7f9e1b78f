"""A local Aspose.OCR Cloud v5 API emulator with fault injection, for tests and demos (stdlib only)."""

from ocr_poller_tools.emulator.api import FAULT_HEADER, NOT_BASE64, UnknownEndpoint, UnknownTask
from ocr_poller_tools.emulator.content import (
    ENDPOINTS,
    InvalidSubmission,
    large_result,
    png_description,
    text_pdf,
)
from ocr_poller_tools.emulator.faults import FOREVER, Fault, FaultError, FaultKind, make_fault
from ocr_poller_tools.emulator.server import Emulator, main_emulator

__all__ = [
    "ENDPOINTS",
    "FAULT_HEADER",
    "FOREVER",
    "NOT_BASE64",
    "Emulator",
    "Fault",
    "FaultError",
    "FaultKind",
    "InvalidSubmission",
    "UnknownEndpoint",
    "UnknownTask",
    "large_result",
    "main_emulator",
    "make_fault",
    "png_description",
    "text_pdf",
]
