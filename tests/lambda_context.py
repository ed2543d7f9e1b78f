"""The Lambda context object the handler and Powertools read, for tests: the local run's, named for tests."""

from __future__ import annotations

from dataclasses import dataclass

from ocr_poller_tools.localrun import LocalContext


@dataclass
class LambdaContext(LocalContext):
    """Lambda's context as the local run builds it, under the tests' function name."""

    function_name: str = "ocr-poller-test"
