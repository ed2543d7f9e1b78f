"""Builds the collaborators of a check from Settings: the one place that picks real adapters."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import boto3
import urllib3
from aws_lambda_powertools.utilities import parameters
from botocore.config import Config

from ocr_poller.adapters.aspose import AsposeApi, Credentials
from ocr_poller.adapters.dynamodb import DynamoRecords
from ocr_poller.adapters.eventbridge import EventBridgeAnnouncer
from ocr_poller.adapters.s3 import S3ResultStore
from ocr_poller.adapters.sqs import SqsPollQueue
from ocr_poller.adapters.stepfunctions import StepFunctionsCallbacks
from ocr_poller.config import Settings
from ocr_poller.errors import ConfigError
from ocr_poller.poll import Collaborators
from ocr_poller.schedule import Backoff

SECRET_MAX_AGE_SECONDS = 300


def credentials_provider(
    *, secret_name: str | None, client_id: str | None, client_secret: str | None
) -> Callable[[], Credentials]:
    """Aspose credentials from the named secret (cached by Powertools) or given directly."""
    if secret_name:

        def from_secret() -> Credentials:
            secret = parameters.get_secret(secret_name, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
            try:
                return Credentials(str(secret["clientId"]), str(secret["clientSecret"]))
            except (KeyError, TypeError) as exc:
                raise ConfigError(f"secret {secret_name} must hold clientId and clientSecret") from exc

        return from_secret
    if client_id and client_secret:
        credentials = Credentials(client_id, client_secret)
        return lambda: credentials
    raise ConfigError("set ASPOSE_CREDENTIALS_SECRET, or ASPOSE_CLIENT_ID and ASPOSE_CLIENT_SECRET")


@dataclass(frozen=True)
class Wiring:
    """What the handler needs: the collaborators of a check and how many checks run at once."""

    collaborators: Collaborators
    max_concurrent_checks: int

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        session: boto3.session.Session | None = None,
        endpoint_url: str | None = None,
    ) -> Wiring:
        """The real adapters for these settings; tools pass the session and endpoint of another stack."""
        return cls(
            build_collaborators(settings, session=session, endpoint_url=endpoint_url),
            settings.max_concurrent_checks,
        )


@cache
def real_wiring() -> Wiring:
    """The function's wiring from its environment, built on first use and kept while the container is warm."""
    return Wiring.from_settings(Settings.from_env())


def build_collaborators(
    settings: Settings,
    *,
    session: boto3.session.Session | None = None,
    endpoint_url: str | None = None,
) -> Collaborators:
    """Real adapters, sized so that every concurrent check has its own HTTP connection.

    Without a session and endpoint, boto3 takes region, credentials and endpoint from the environment.
    """
    pool_size = settings.max_concurrent_checks
    aws_config = Config(max_pool_connections=pool_size * 2, retries={"mode": "standard"})
    session = session or boto3.session.Session()
    return Collaborators(
        api=AsposeApi(
            settings.aspose_base_url,
            credentials_provider(
                secret_name=settings.aspose_credentials_secret,
                client_id=settings.aspose_client_id,
                client_secret=settings.aspose_client_secret,
            ),
            http=urllib3.PoolManager(maxsize=pool_size, block=False),
        ),
        results=S3ResultStore(
            settings.results_bucket,
            settings.results_prefix,
            inline_text_bytes=settings.inline_text_bytes,
            client=session.client("s3", config=aws_config, endpoint_url=endpoint_url),
        ),
        records=DynamoRecords(
            settings.results_table,
            retention_days=settings.record_retention_days,
            client=session.client("dynamodb", config=aws_config, endpoint_url=endpoint_url),
        ),
        queue=SqsPollQueue(
            settings.poll_queue_url,
            settings.dead_letter_queue_url,
            client=session.client("sqs", config=aws_config, endpoint_url=endpoint_url),
        ),
        announcer=EventBridgeAnnouncer(
            settings.event_bus_name,
            client=session.client("events", config=aws_config, endpoint_url=endpoint_url),
        ),
        callbacks=StepFunctionsCallbacks(
            client=session.client("stepfunctions", config=aws_config, endpoint_url=endpoint_url)
        ),
        backoff=Backoff(
            initial=settings.poll_initial_delay_seconds,
            maximum=settings.poll_max_delay_seconds,
            lag_ratio=settings.poll_lag_ratio,
        ),
        deadline_seconds=settings.poll_deadline_seconds,
        default_endpoint=settings.default_endpoint,
        clock=time.time,
    )
