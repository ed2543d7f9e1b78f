"""Two live copies of one SQS message (same message id), the second run at every point of the first.

SQS hands the same message to two consumers when a visibility timeout lapses while the first still works,
or on a redelivery after a crash. Whatever the interleaving, the check is made once and its effects are
sent once: a copy that finds the check being sent comes back later (Redeliver) and then finds nothing to do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from ocr_poller.errors import Redeliver
from ocr_poller.poll import Action, Collaborators, process_body
from tests.unit.fakes import FakeApi, FirstCall, Reply, World

TASK = "c4b60313-4f78-45f8-b708-069eb98dc22e"
BODY = json.dumps({"taskId": TASK, "endpoint": "RecognizeLabel", "taskToken": "tok"})
VISIBILITY_TIMEOUT_SECONDS = 1800


class Interleave(FirstCall):
    """Wraps a collaborator: runs `twin` once, just before or just after the first call of `method`."""

    def __init__(self, inner: object, method: str, when: str, twin: Callable[[], None]) -> None:
        super().__init__(inner, method)
        self._when, self._twin = when, twin

    def first_call(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._when == "before":
            self._twin()
        result = call(*args, **kwargs)
        if self._when == "after":
            self._twin()
        return result


# Every step of the first copy at which the second can run: (collaborator, method, before/after).
RUNNING_POINTS = [
    ("records", "get", "before"),
    ("records", "get", "after"),
    ("api", "check", "after"),
    ("records", "commit", "before"),
    ("records", "commit", "after"),
    ("queue", "send", "before"),
    ("queue", "send", "after"),
    ("callbacks", "heartbeat", "after"),
]
FINAL_POINTS = [
    *RUNNING_POINTS[:5],
    ("callbacks", "succeed", "before"),
    ("callbacks", "succeed", "after"),
    ("announcer", "announce", "before"),
    ("announcer", "announce", "after"),
    ("records", "mark_sent", "before"),
    ("records", "mark_sent", "after"),
]


def run_twins(world: World, point: tuple[str, str, str]) -> list[Action | str]:
    """Both copies, the second run at `point` of the first; a failed copy comes back after SQS's visibility
    timeout, by which time the successor (delayed at most 900 s) has been delivered and checked."""
    outcomes: list[Action | str] = []

    def copy(deps: Collaborators) -> None:
        try:
            outcomes.append(process_body(BODY, world.sqs("m1"), deps).action)
        except Redeliver:
            outcomes.append("redeliver")

    adapter, method, when = point
    plain = world.deps
    copy(replace(plain, **{adapter: Interleave(getattr(plain, adapter), method, when, lambda: copy(plain))}))
    for successor, delay in list(world.queue.sent):
        world.clock.now += delay
        process_body(json.dumps(successor.to_message()), world.sqs("successor"), plain)
    world.clock.now += VISIBILITY_TIMEOUT_SECONDS
    for _ in range(outcomes.count("redeliver")):
        copy(plain)
    return outcomes


@pytest.mark.parametrize("point", RUNNING_POINTS, ids=lambda point: "-".join(point))
def test_twins_of_a_running_check_send_one_successor(point: tuple[str, str, str]) -> None:
    # Given a running task
    world = World(FakeApi([Reply("Pending")]))
    # When two live copies of its message interleave at `point`
    outcomes = run_twins(world, point)
    # Then check 1 made once, and one successor, which made check 2 and sent its own
    assert outcomes.count(Action.REQUEUED) == 1 and outcomes[-1] != "redeliver"
    assert world.records.items[TASK].check_number == 2
    assert [request.for_check for request, _ in world.queue.sent] == [2, 3]
    assert [call[0] for call in world.callbacks.calls] == ["heartbeat", "heartbeat"]


@pytest.mark.parametrize("point", FINAL_POINTS, ids=lambda point: "-".join(point))
def test_twins_of_a_final_check_announce_once(point: tuple[str, str, str]) -> None:
    # Given a task that completed
    world = World(FakeApi([Reply("Completed", [("Text", b"ACME")])]))
    # When two live copies of its message interleave at `point`
    outcomes = run_twins(world, point)
    # Then one record, one object, one callback, one event, no successor
    record = world.records.items[TASK]
    assert record.check_number == 1 and len(record.results) == 1
    assert list(world.results.objects) == [record.results[0].key]
    assert [call[0] for call in world.callbacks.calls] == ["succeed"]
    assert len(world.announcer.announced) == 1 and world.queue.sent == []
    assert Action.FINISHED in outcomes and outcomes[-1] != "redeliver"
