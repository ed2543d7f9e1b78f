"""Faults at the domain level with in-memory collaborators: crashes half-way, duplicates, arbitrary bodies."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocr_poller.adapters.aspose import Credentials
from ocr_poller.errors import Redeliver
from ocr_poller.poll import Action, Outcome, process_body, process_detail
from ocr_poller.request import ENDPOINTS, MAX_BODY_BYTES
from tests.unit.fakes import Crash, CrashOnce, FakeApi, Reply, World

TASK = "c4b60313-4f78-45f8-b708-069eb98dc22e"
BODY = json.dumps({"taskId": TASK, "endpoint": "RecognizeLabel"})
COMPLETED = Reply("Completed", [("Text", b"label text")], code="Ok")
VISIBILITY_TIMEOUT_SECONDS = 1800  # the poll queue's, as in template.yaml
PENDING = Reply("Pending", code="NotReady")

# What may reach a URL query or an S3 key, stated independently of request.py: a plain identifier.
PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_LOWER_ENDPOINTS = {name.lower() for name in ENDPOINTS}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
task_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", fullmatch=True)
endpoints = st.sampled_from(ENDPOINTS).flatmap(
    lambda name: st.sampled_from([name, name.lower(), name.upper()])
)
valid_requests = st.fixed_dictionaries(
    {"taskId": task_ids},
    optional={
        "endpoint": endpoints,
        "attempt": st.integers(0, 100_000),
        "firstCheckAt": st.floats(0, 4e9),
        "submittedBy": json_values,  # fields of the producer's own are allowed
    },
)
fuzzed_requests = st.fixed_dictionaries(
    {"taskId": task_ids | st.text(max_size=40) | json_values},
    optional={
        "endpoint": endpoints | st.text(max_size=30) | json_values,
        "attempt": st.integers() | json_values,
        "firstCheckAt": st.floats() | json_values,
    },
)


def _plain_text(value: object) -> bool:
    return isinstance(value, str) and PLAIN_ID.fullmatch(value) is not None


def _not_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


invalid_bodies = st.one_of(
    st.text().filter(_not_json),
    json_values.filter(lambda value: not isinstance(value, dict)).map(json.dumps),
    st.dictionaries(st.text(max_size=10).filter(lambda key: key != "taskId"), json_values, max_size=4).map(
        json.dumps
    ),
    valid_requests.flatmap(
        lambda request: (
            (st.text(max_size=40) | json_values)
            .filter(lambda task_id: task_id is not None and not _plain_text(task_id))
            .map(lambda task_id: json.dumps({**request, "taskId": task_id}))
        )
    ),
    valid_requests.flatmap(
        lambda request: (
            st.text(max_size=30)
            .filter(lambda name: name.lower() not in _LOWER_ENDPOINTS)
            .map(lambda name: json.dumps({**request, "endpoint": name}))
        )
    ),
    valid_requests.map(lambda request: json.dumps({**request, "padding": "x" * MAX_BODY_BYTES})),
)
arbitrary_bodies = st.one_of(
    st.text(),
    st.binary().map(lambda data: data.decode("latin-1")),
    st.binary().map(lambda data: data.decode("utf-8", "surrogateescape")),
    json_values.map(json.dumps),
    valid_requests.map(json.dumps),
    fuzzed_requests.map(json.dumps),
    invalid_bodies,
)


def assert_rejected_untouched(outcome: Outcome, world: World, sent_body: str) -> None:
    """A rejected request reached neither the API nor S3 nor the record, and went to the dead-letter queue."""
    assert outcome.action is Action.REJECTED and outcome.reason
    assert world.queue.rejected == [(sent_body, outcome.reason)]
    assert world.api.calls == [] and world.results.objects == {} and world.records.items == {}


def assert_checked_safely(outcome: Outcome, world: World) -> None:
    """A request that passed was checked once, and only a plain identifier reached the URL and the S3 key."""
    assert outcome.action is not Action.REJECTED and world.queue.rejected == []
    [(endpoint, task_id)] = world.api.calls
    assert endpoint in ENDPOINTS and PLAIN_ID.fullmatch(task_id)
    assert set(world.results.objects) == {f"results/{task_id}/0-text.txt"}


@given(arbitrary_bodies)
def test_any_body_is_rejected_or_checked_and_nothing_escapes(body: str) -> None:
    # Given
    world = World(FakeApi([COMPLETED]))
    # When
    outcome = process_body(body, world.sqs("m1"), world.deps)
    # Then
    if outcome.action is Action.REJECTED:
        assert_rejected_untouched(outcome, world, body)
    else:
        assert_checked_safely(outcome, world)


@given(valid_requests)
def test_valid_request_is_checked_at_its_canonical_endpoint(request: dict[str, Any]) -> None:
    # Given
    world = World(FakeApi([COMPLETED]))
    # When
    outcome = process_body(json.dumps(request), world.sqs("m1"), world.deps)
    # Then
    assert_checked_safely(outcome, world)
    expected_endpoint = request.get("endpoint", "RecognizeLabel").lower()
    assert [(endpoint.lower(), task_id) for endpoint, task_id in world.api.calls] == [
        (expected_endpoint, request["taskId"])
    ]


@given(invalid_bodies)
def test_invalid_body_is_rejected_before_the_api(body: str) -> None:
    # Given
    world = World(FakeApi([COMPLETED]))
    # When
    outcome = process_body(body, world.sqs("m1"), world.deps)
    # Then
    assert_rejected_untouched(outcome, world, body)


@given(json_values | fuzzed_requests | valid_requests)
def test_any_eventbridge_detail_is_rejected_or_checked(detail: object) -> None:
    # Given
    world = World(FakeApi([COMPLETED]))
    # When
    outcome = process_detail(detail, world.event("event-1"), world.deps)
    # Then
    if outcome.action is Action.REJECTED:
        assert_rejected_untouched(outcome, world, json.dumps(detail))
    else:
        assert_checked_safely(outcome, world)


@pytest.mark.parametrize(
    "request_fields",
    [
        {"taskId": "../../etc/passwd"},
        {"taskId": "a/b"},
        {"taskId": "a?id=b&x=1"},
        {"taskId": "a%2F..%2Fb"},
        {"taskId": "a#b"},
        {"taskId": "a\nX-Injected: 1"},
        {"taskId": ".hidden"},
        {"taskId": "ａｂｃ"},  # fullwidth letters: not ASCII
        {"taskId": TASK, "endpoint": "RecognizeLabel/../../connect/token"},
        {"taskId": TASK, "endpoint": "RecognizeLabel?id=other"},
    ],
)
def test_hostile_ids_and_endpoints_never_reach_a_url_or_a_key(request_fields: dict[str, str]) -> None:
    # Given
    world = World(FakeApi([COMPLETED]))
    body = json.dumps(request_fields)
    # When
    outcome = process_body(body, world.sqs("m1"), world.deps)
    # Then
    assert_rejected_untouched(outcome, world, body)


def test_credentials_repr_hides_the_secret() -> None:
    # Given
    credentials = Credentials("client-id", "s3cr3t-value")
    # When
    shown = f"{credentials!r} {credentials!s} {[credentials]}"
    # Then
    assert "s3cr3t-value" not in shown and "client-id" in shown


@pytest.mark.parametrize(
    ("adapter", "method", "reply", "action", "checks"),
    [
        pytest.param(
            "records", "commit", COMPLETED, Action.FINISHED, 2, id="after-the-results-before-the-record"
        ),
        pytest.param("queue", "send", PENDING, Action.RESUMED, 1, id="after-the-record-before-the-requeue"),
        pytest.param(
            "announcer", "announce", COMPLETED, Action.RESUMED, 1, id="after-the-record-before-the-event"
        ),
    ],
)
def test_redelivery_after_a_crash_finishes_the_check_once(
    adapter: str, method: str, reply: Reply, action: Action, checks: int
) -> None:
    # Given the function dies half-way through the first delivery
    world = World(FakeApi([reply]))
    deps = replace(world.deps, **{adapter: CrashOnce(getattr(world, adapter), method)})
    with pytest.raises(Crash):
        process_body(BODY, world.sqs("m1"), deps)
    # When SQS redelivers the same message after its visibility timeout
    world.clock.now += VISIBILITY_TIMEOUT_SECONDS
    outcome = process_body(BODY, world.sqs("m1"), deps)
    # Then the check's effects are complete, each exactly once
    assert outcome.action is action and len(world.api.calls) == checks
    record = world.records.items[TASK]
    if record.status.is_final:
        assert len(world.announcer.announced) == 1 and world.queue.sent == []
        assert list(world.results.objects) == [result.key for result in record.results]
    else:
        assert [request.for_check for request, _ in world.queue.sent] == [
            2
        ] and world.announcer.announced == []


@pytest.mark.parametrize(
    "delivery_ids", [["m1", "m1", "m1"], ["m1", "m2", "m3"]], ids=["same-message", "separate-messages"]
)
@pytest.mark.parametrize("reply", [PENDING, COMPLETED], ids=["running", "finished"])
def test_repeated_deliveries_of_a_request_make_one_check_and_one_successor(
    delivery_ids: list[str], reply: Reply
) -> None:
    # Given
    world = World(FakeApi([reply]))
    # When the request is delivered three times, one after the other, within the first one's invocation
    outcomes: list[Action | str] = []
    for delivery_id in delivery_ids:
        try:
            outcomes.append(process_body(BODY, world.sqs(delivery_id), world.deps).action)
        except Redeliver:
            outcomes.append("redeliver")
    # Then a copy of the message whose check is still being sent comes back later; others are dropped
    copies_wait = reply is PENDING and delivery_ids[1] == delivery_ids[0]
    assert outcomes[1:] == ["redeliver"] * 2 if copies_wait else [Action.DUPLICATE] * 2
    assert len(world.api.calls) == 1
    assert len(world.queue.sent) + len(world.announcer.announced) == 1


def test_a_duplicate_successor_is_dropped_by_the_next_checks_conditional_write() -> None:
    # Given check 1 made, and its successor on the queue twice (a producer retry or an SQS duplicate)
    world = World(FakeApi([PENDING]))
    process_body(BODY, world.sqs("m1"), world.deps)
    [(successor, _)] = world.queue.sent
    body = json.dumps(successor.to_message())
    # When both copies are delivered
    first = process_body(body, world.sqs("s1"), world.deps)
    second = process_body(body, world.sqs("s1-copy"), world.deps)
    # Then one made check 2, the other nothing
    assert (first.action, second.action) == (Action.REQUEUED, Action.DUPLICATE)
    assert [request.for_check for request, _ in world.queue.sent] == [2, 3] and len(world.api.calls) == 2
