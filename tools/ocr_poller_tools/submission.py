"""Submitting a file to Aspose.OCR Cloud: what the tools do, and the function never does."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

from ocr_poller.adapters.aspose import AsposeApi

SUBMIT_READ_TIMEOUT_SECONDS = 120.0  # a submission uploads the whole file


class SubmitError(RuntimeError):
    """The API refused a submission."""


def submission_body(endpoint: str, content: bytes, *, result_type: str | None = None) -> dict[str, Any]:
    """The SDK's request body for a file: Base64 `image` and settings, or `text` for speech."""
    if endpoint == "ConvertTextToSpeech":
        return {"text": content.decode("utf-8")}
    settings: dict[str, Any] = {"language": "English"}
    if result_type:
        settings["resultType"] = result_type
    return {"image": base64.b64encode(content).decode("ascii"), "settings": settings}


class SubmittingApi(AsposeApi):
    """The function's API client, with the submission the tools need (same token, same 401 renewal)."""

    def submit(self, endpoint: str, body: dict[str, Any]) -> str:
        """POST a recognition request (the SDK's JSON body); the API answers the new task id."""
        url = f"{self._base_url}/v5.0/ocr/{quote(endpoint)}"
        payload = json.dumps(body).encode()
        response = self._authorized(
            lambda token: self._request(
                "POST", url, token, body=payload, read_timeout=SUBMIT_READ_TIMEOUT_SECONDS
            ),
            None,
        )
        if response.status != 200:
            raise SubmitError(f"POST {url} answered HTTP {response.status}: {response.data[:200]!r}")
        task_id = response.data.decode("utf-8", "replace").strip().strip('"')
        if not task_id:
            raise SubmitError(f"POST {url} answered no task id")
        return task_id
