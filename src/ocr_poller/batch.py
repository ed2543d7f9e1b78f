"""Powertools' SQS batch processing with the records of a batch checked concurrently."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType


class ConcurrentBatchProcessor(BatchProcessor):
    """BatchProcessor whose records run on a bounded thread pool.

    A check mostly waits on HTTP (urllib3, boto3), which releases the GIL, so threads make a batch of
    ten cost about one check; AsyncBatchProcessor would only help code that awaits.
    """

    def __init__(self, max_workers: int, logger: Logger | None = None) -> None:
        # A batch whose records all failed is reported record by record too, not raised: the queue's redrive
        # policy treats both alike, and raising would fail the invocation (and the local run's feeder).
        # The logger gets each failed record's exception with its traceback.
        # Powertools' Logger has the logging.Logger methods BatchProcessor calls, without the base class.
        super().__init__(
            event_type=EventType.SQS, raise_on_entire_batch_failure=False, logger=cast(logging.Logger, logger)
        )
        self.max_workers = max_workers

    def process(self) -> list[tuple]:  # type: ignore[type-arg]
        """Process every record on the pool; success and failure lists are appended under the GIL."""
        if len(self.records) == 1:  # what low traffic brings: no thread to start
            return [self._process_record(self.records[0])]
        workers = min(self.max_workers, len(self.records))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check") as pool:
            return list(pool.map(self._process_record, self.records))
