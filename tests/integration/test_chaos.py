"""Issue 10, item 10: a seeded chaos run of many tasks through the real handler, checked against the contract.

The handler runs as Lambda runs it (`lambda_handler(event, context, wiring)`) against moto's server (the
template's table, bucket, queues, bus) and the emulator. A small driver plays everything around it on a
virtual clock that the handler's collaborators and the emulator share, so nothing sleeps:

- SQS (the poll queue): a received message is invisible for the visibility timeout, then comes back unless
  acknowledged; acknowledging any copy of a message deletes it (the assumption `poll.Delivery` states); the
  receive after the template's `maxReceiveCount` moves it to the dead-letter queue. SQS's own duplicates
  ("ghosts") are extra deliveries of a message id, which may come even after the message was deleted.
- Lambda's SQS event source: batches of 1-10 visible messages; an invocation that dies acknowledges nothing,
  one that returns acknowledges everything but its `batchItemFailures`.
- Lambda's asynchronous invocation of EventBridge's events: a failed invocation is tried again 60 s and then
  120 s later (the template's `MaximumRetryAttempts`), then the event goes to the dead-letter queue wrapped
  as the on-failure destination wraps it.
- Chaos, seeded: invocations killed just before or just after an AWS call (S3 put, DynamoDB get, commit,
  claim, mark_sent, SQS send, EventBridge put_events, a Step Functions callback), at least once at each of
  these points but the claim's, or that call alone failing (an error the function sees, so its record fails
  and the lease is given up, while the invocation goes on); concurrent copies (two
  invocations of one SQS record, or of one EventBridge event, started together on two threads); producer
  duplicates (new message ids); SQS's ghosts (same id); tasks ending Error or NotExist; "cursed" tasks whose
  every invocation dies at one point until their message is dead-lettered. At the end, the dead-letter
  queue is redriven to the poll queue with the chaos off, as an operator does once the cause is fixed.

A kill is a BaseException nothing in the function catches; once an invocation is killed, every later call
any of its threads makes dies too, as the whole sandbox would. DynamoDB's per-item atomicity of conditional
writes, which moto's server lacks under concurrent requests, is restored by a lock per task. Every call is
logged in order, so that each repeated effect can be matched with the kill or failure that explains it
(ocr_poller.poll's docstring: only a failure between sending and marking repeats an event or a callback; a
successor is repeated when a copy of its request claims the lease before the next check is committed, which
here takes a kill or failure of a delivery of that next check).

The seed is printed; `CHAOS_SEED=… CHAOS_TASKS=…` reruns another one. The threads' interleavings (of a
batch, of concurrent copies) are the only thing the seed does not fix.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import os
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from ocr_poller_tools.emulator import Emulator
from ocr_poller_tools.emulator.content import results_for
from ocr_poller_tools.localrun import LocalContext, eventbridge_event, sqs_event
from ocr_poller_tools.sandbox import MotoServer, Stack, deploy_stack, environment, load_template
from ocr_poller_tools.submission import submission_body

from ocr_poller import handler, observability
from ocr_poller.adapters.aspose import AsposeApi, Credentials
from ocr_poller.adapters.s3 import result_key
from ocr_poller.config import Settings
from ocr_poller.errors import Redeliver, Refused
from ocr_poller.request import parse_body
from ocr_poller.wiring import Wiring
from tests.integration.conftest import TEMPLATE_PATH
from tests.integration.flow import SAMPLES, VISIBILITY_TIMEOUT_SECONDS, completion_events

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType
    from mypy_boto3_sqs.type_defs import MessageTypeDef

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("CHAOS_SEED", "20261202"))
TASK_COUNT = int(os.environ.get("CHAOS_TASKS", "80"))

_RESOURCES = load_template(TEMPLATE_PATH)["Resources"]
MAX_RECEIVES = int(_RESOURCES["PollQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"])
LAMBDA_RETRIES = int(_RESOURCES["PollerFunction"]["Properties"]["EventInvokeConfig"]["MaximumRetryAttempts"])
LAMBDA_RETRY_DELAYS = (60.0, 120.0)  # Lambda's waits before the retries of a failed asynchronous invocation
BATCH_SIZE = 10
PROCESSING_SECONDS = 16.0  # the emulator's: Pending, Processing, then Completed (virtual seconds)
START_WINDOW_SECONDS = 16.0  # the producers start the tasks' chains over this span
MAX_STEPS = 20_000  # a guard: the run ends long before

# How the tasks are made, and how hard the chaos hits.
EVENTBRIDGE_SHARE = 0.3
TOKEN_SHARE = 0.4
ERROR_SHARE = 0.15
NOT_EXIST_SHARE = 0.1
PRODUCER_DUPLICATE_SHARE = 0.2
GHOST_SHARE = 0.08  # of every message put on the poll queue
TWIN_SHARE = 0.15  # of the deliveries: a concurrent copy of one record (SQS) or of the event (EventBridge)
ARMED_SHARE = 0.4  # of the invocations: may be killed at a call, with the odds below per call and side
FAILURE_SHARE = 0.3  # of those random crashes: the call fails (raises) instead of the invocation dying
CRASH_ODDS = {
    "s3.put": 0.06,
    "dynamodb.get": 0.04,
    "dynamodb.commit": 0.08,
    "dynamodb.claim": 0.4,
    "dynamodb.mark_sent": 0.35,
    "sqs.send": 0.08,
    "events.put_events": 0.3,
    "stepfunctions.callback": 0.2,
}
SIDES = ("before", "after")
PLANNED = [(point, side) for point in CRASH_ODDS if point != "dynamodb.claim" for side in SIDES]
# Each cursed task dies at its point on every invocation until its message is dead-lettered.
CURSED_SQS = [("dynamodb.commit", "before"), ("sqs.send", "before"), ("dynamodb.get", "before")]
CURSED_EVENTBRIDGE = [("sqs.send", "before"), ("dynamodb.commit", "after"), ("dynamodb.get", "before")]
# Cursed too, and their first message is handed to two invocations at once that both read the record before
# either commits: the one that commits dies before the successor.
CURSED_TWINS = [("sqs.send", "before")]

# (endpoint, sample, result type) of the submissions.
SUBMISSIONS = [
    ("RecognizeLabel", "label.png", None),
    ("RecognizePdf", "invoice.pdf", "TextAndPdf"),
    ("RecognizeImage", "label.png", "TextAndHocr"),
]

# The collaborators' calls that reach AWS, as crash points.
POINTS = {
    ("results", "put"): "s3.put",
    ("records", "get"): "dynamodb.get",
    ("records", "commit"): "dynamodb.commit",
    ("records", "claim"): "dynamodb.claim",
    ("records", "mark_sent"): "dynamodb.mark_sent",
    ("queue", "send"): "sqs.send",
    ("announcer", "announce"): "events.put_events",
    ("callbacks", "heartbeat"): "stepfunctions.callback",
    ("callbacks", "succeed"): "stepfunctions.callback",
    ("callbacks", "fail"): "stepfunctions.callback",
}

# DynamoDB applies each conditional write to an item atomically; moto's server does not when two requests for
# one item arrive at once (both conditions pass), so the run serialises them per task as DynamoDB would.
CONDITIONAL_WRITES = {("records", "commit"), ("records", "claim"), ("records", "mark_sent")}


class Killed(BaseException):
    """The invocation died here; a BaseException, so nothing in the function catches it."""


class Failure(Redeliver):
    """An injected failure of one AWS call (before it took effect, or after): the function sees it, as it sees
    an adapter's translated error, and that record fails; the invocation goes on."""


class VirtualClock:
    """Wall-clock time plus the waits the driver skipped (never behind time.time(), which the API reads)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance_to(self, moment: float) -> None:
        with self._lock:
            self._offset += max(0.0, moment - (time.time() + self._offset))


@dataclass
class Task:
    """One task of the run, as its producer made it."""

    id: str
    endpoint: str
    expected: str  # the status its record must end with
    trigger: str  # "sqs" or "eventbridge"
    token: str | None
    starts_at: float
    body: dict[str, Any] | None = None  # the submission (None: never submitted, NotExist)
    error_after: int = 0  # an Error task answers Error from this check on
    cursed: tuple[str, str] | None = None
    twinned: bool = False  # its first message goes to two invocations at once, which meet after their reads
    planned: tuple[str, str] | None = None  # the first invocation to reach this point for the task dies there

    def request(self) -> dict[str, Any]:
        document: dict[str, Any] = {"taskId": self.id, "endpoint": self.endpoint}
        if self.token:
            document["taskToken"] = self.token
        return document


@dataclass
class Message:
    """A message on the simulated poll queue."""

    id: str
    body: str
    visible_at: float
    origin: str  # producer, producer-duplicate, successor, ghost, redrive
    receives: int = 0
    deleted: bool = False
    ghost: bool = False


@dataclass(order=True)
class EventDelivery:
    """An asynchronous invocation of the function with an EventBridge event, due at `at`."""

    at: float
    number: int
    event: dict[str, Any] = field(compare=False)
    attempt: int = field(default=1, compare=False)


@dataclass
class Kill:
    """An injected crash."""

    invocation: int
    point: str
    side: str
    task: str
    order: int
    cursed: bool
    kind: str = "kill"  # or "failure": only the call raised, the invocation went on


@dataclass
class Effect:
    """A call that reached AWS (or Step Functions' stand-in), in the run's order."""

    invocation: int
    order: int
    task: str
    check: int | None
    what: str
    detail: Any = None


@dataclass
class Check:
    """One status check the poller made, and what became of it before its invocation ended."""

    invocation: int
    task: str
    fate: str = "pending"  # committed; lost (another delivery committed it); killed; unresolved (a bug)


@dataclass
class Invocation:
    """One run of the handler: what it carried, whether it may be killed, and where it died."""

    number: int
    source: str
    requests: list[tuple[str, int]]  # (task, the check its request asks for)
    armed: bool
    chaos: bool
    cursed: dict[str, tuple[str, str]]
    killed: Kill | None = None
    failures: list[Kill] = field(default_factory=list)
    outcome: str = ""
    deliveries: list[str] = field(default_factory=list)  # SQS message ids, or the EventBridge event's id
    acknowledged: set[str] = field(default_factory=set)  # what its response let the event source delete
    rendezvous: threading.Barrier | None = None  # met by the copies of a twinned task after their reads
    lock: threading.Lock = field(default_factory=threading.Lock)
    occurrences: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    checks: dict[tuple[int, str], Check] = field(default_factory=dict)  # (thread, task) -> its open check


class Journal:
    """Everything the run did, in order; shared by the threads of every invocation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._order = itertools.count()
        self.effects: list[Effect] = []
        self.kills: list[Kill] = []
        self.checks: list[Check] = []
        self.invocations: dict[int, Invocation] = {}

    def next_order(self) -> int:
        with self._lock:
            return next(self._order)

    def effect(
        self, invocation: Invocation, task: str, check: int | None, what: str, detail: Any = None
    ) -> None:
        with self._lock:
            self.effects.append(Effect(invocation.number, next(self._order), task, check, what, detail))

    def kill(self, kill: Kill) -> None:
        with self._lock:
            self.kills.append(kill)

    def check(self, check: Check) -> None:
        with self._lock:
            self.checks.append(check)

    def of(self, what: str) -> list[Effect]:
        return [effect for effect in self.effects if effect.what == what]


class StepFunctions:
    """Step Functions' side of the task tokens (there is no workflow here): records calls, refuses repeats."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.closed: set[str] = set()

    def heartbeat(self, token: str) -> str | None:
        with self._lock:
            return "TaskDoesNotExist" if token in self.closed else None

    def succeed(self, token: str, output: str) -> str | None:
        return self._close(token)

    def fail(self, token: str, error: str, cause: str) -> str | None:
        return self._close(token)

    def _close(self, token: str) -> str | None:
        with self._lock:
            refusal = "TaskDoesNotExist" if token in self.closed else None
            self.closed.add(token)
            return refusal


class Chaotic:
    """Wraps one real collaborator for one invocation: logs each call, kills the invocation where planned."""

    def __init__(self, inner: object, adapter: str, invocation: Invocation, run: ChaosRun) -> None:
        self._inner = inner
        self._adapter = adapter
        self._invocation = invocation
        self._run = run

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute
        point = POINTS.get((self._adapter, name))

        def call(*args: Any, **kwargs: Any) -> Any:
            task, check = self._run.subject(self._adapter, name, args)
            self._run.before(self._invocation, point, task)
            try:
                if (self._adapter, name) in CONDITIONAL_WRITES:
                    with self._run.item_lock(task):
                        result = attribute(*args, **kwargs)
                else:
                    result = attribute(*args, **kwargs)
            except BaseException as exc:
                self._run.failed(self._invocation, self._adapter, name, task, exc)
                raise
            self._run.performed(self._invocation, self._adapter, name, task, check, args, result)
            self._run.after(self._invocation, point, task)
            if (self._adapter, name) == ("records", "get") and self._invocation.rendezvous is not None:
                self._invocation.rendezvous.wait()
                self._invocation.rendezvous = None  # once: the read before the check
            return result

        return call


@dataclass
class Report:
    """What the run left behind: the tasks, its journal, and what AWS and the emulator hold."""

    seed: int
    tasks: dict[str, Task]
    journal: Journal
    records: dict[str, dict[str, Any]]
    objects: dict[str, bytes]  # every key under the results prefix -> its body
    events: list[dict[str, Any]]
    checks_seen: dict[str, int]  # by the emulator
    queue_messages: int  # on moto's poll queue: every SendMessage the poller made
    prefix: str
    bucket: str
    counters: Counter[str]
    planned: set[tuple[str, str]]
    messages: list[Message]
    virtual_seconds: float
    real_seconds: float

    def sends(self) -> dict[tuple[str, int], list[Effect]]:
        grouped: dict[tuple[str, int], list[Effect]] = defaultdict(list)
        for effect in self.journal.of("send"):
            grouped[(effect.task, effect.check or 0)].append(effect)
        return grouped

    def killed_after(self, effect: Effect, unless: str | None = None) -> Kill | None:
        """What ended `effect`'s invocation (a kill), or failed its record (an injected failure of a later
        call for the same task), with no `unless` call for the task in between. (A call in flight on one
        thread when another thread's call kills the invocation completes, and its thread dies at its next
        step: its order may follow the kill's.)"""
        invocation = self.journal.invocations[effect.invocation]
        for stop in ([invocation.killed] if invocation.killed else []) + [
            failure for failure in invocation.failures if failure.task == effect.task
        ]:
            last = stop.order if stop.kind == "failure" else None
            if stop.kind == "failure" and stop.order < effect.order:
                continue
            if unless is not None and any(
                later.invocation == effect.invocation
                and later.task == effect.task
                and later.what == unless
                and later.order > effect.order
                and (last is None or later.order < last)
                for later in self.journal.effects
            ):
                continue
            return stop
        return None

    def unexplained_once_effects(self, what: str) -> tuple[list[str], list[str]]:
        """Repeats of a final check's effect (`announce`, `callback`): every one but the last must have been
        followed by a kill of its invocation before the record was marked sent."""
        unexplained: list[str] = []
        explained: list[str] = []
        by_task: dict[str, list[Effect]] = defaultdict(list)
        for effect in self.journal.of(what):
            by_task[effect.task].append(effect)
        for task, effects in by_task.items():
            for effect in effects[:-1]:
                kill = self.killed_after(effect, unless="mark_sent")
                if kill is None:
                    unexplained.append(f"{what} #{effect.order} of {task} by invocation {effect.invocation}")
                else:
                    explained.append(
                        f"{task[:8]}: invocation {effect.invocation} {kill.kind} at {kill.point} {kill.side}"
                    )
        return unexplained, explained

    def successor_repeats(self) -> tuple[list[str], list[str]]:
        """Each send of a check's successor after the first must follow a claim made before the next check
        was committed: the window poll's docstring states (successors are not marked), opened by a kill or
        failure of a delivery of the next check, or by that delivery simply not having come yet."""
        unexplained: list[str] = []
        explained: list[str] = []
        claims = self.journal.of("claim")
        for (task, check), effects in self.sends().items():
            for extra in effects[1:]:
                claimed = any(
                    claim.invocation == extra.invocation and claim.task == task and claim.check == check
                    for claim in claims
                )
                killed = [
                    kill
                    for kill in self.journal.kills
                    if kill.order < extra.order
                    and (kill.kind == "kill" or kill.task == task)
                    and (task, check + 1) in self.journal.invocations[kill.invocation].requests
                    and not self.committed_by(kill.invocation, task, check + 1)
                ]
                senders_killed = [
                    kill for e in effects if e.order < extra.order if (kill := self.killed_after(e))
                ]
                next_committed = any(
                    commit.task == task and commit.check == check + 1 and commit.order < extra.order
                    for commit in self.journal.of("commit")
                )
                if not claimed or next_committed:
                    unexplained.append(
                        f"successor of check {check} of {task} sent again by invocation {extra.invocation} "
                        f"(by a claim: {claimed}; kills of a delivery of check {check + 1}: {len(killed)})"
                    )
                elif killed:
                    cause = killed[-1]
                    explained.append(
                        f"{task[:8]} check {check}: check {check + 1}'s delivery hit by a {cause.kind} at "
                        f"{cause.point} {cause.side} (invocation {cause.invocation})"
                        + (", and the first sender killed after sending" if senders_killed else "")
                    )
                else:
                    explained.append(
                        f"{task[:8]} check {check}: claimed before check {check + 1} was made"
                        + (", the first sender killed after sending" if senders_killed else "")
                    )
        return unexplained, explained

    def story(self, task: str) -> str:
        """Everything the run did about one task, in order: for a failure's message and a bug's write-up."""
        described = replace(self.tasks[task], body=None)
        lines = [f"task {task}: {described}", f"record: {self.records.get(task)}"]
        for message in self.messages:
            if task in message.body:
                lines.append(
                    f"message {message.id[:8]} {message.origin} {message.body[-60:]} "
                    f"receives={message.receives} deleted={message.deleted}"
                )
        for number, invocation in self.journal.invocations.items():
            if any(t == task for t, _ in invocation.requests):
                lines.append(
                    f"invocation {number} ({invocation.source}) carried {invocation.requests}; killed: "
                    f"{invocation.killed}; failures: {invocation.failures}; outcome: {invocation.outcome}"
                )
                lines += [
                    f"    {effect.order}: {effect.what} check {effect.check}"
                    for effect in self.journal.effects
                    if effect.invocation == number and effect.task == task
                ]
                lines += [
                    f"    api check: {check.fate}"
                    for check in self.journal.checks
                    if check.invocation == number and check.task == task
                ]
        return "\n".join(lines)

    def lost(self) -> dict[str, str]:
        """The tasks that did not end as the API said, announced (and called back), and where each stands."""
        lost: dict[str, str] = {}
        for task_id, task in self.tasks.items():
            record = self.records.get(task_id)
            ended = record is not None and record["status"] == task.expected
            told = bool(self.events_of(task_id)) and (
                task.token is None or bool(self.terminal_callbacks(task_id))
            )
            if not (ended and told):
                lost[task_id] = "no record" if record is None else f"{record['status']}, {record['stage']}"
        return lost

    def copies_that_lost_the_commit(self, task: str, message_id: str) -> list[Invocation]:
        """The invocations that checked the task for this message and lost the commit."""
        losers = {
            check.invocation for check in self.journal.checks if check.task == task and check.fate == "lost"
        }
        return [
            self.journal.invocations[number]
            for number in sorted(losers)
            if message_id in self.journal.invocations[number].deliveries
        ]

    def committed_by(self, invocation: int, task: str, check: int) -> bool:
        return any(
            effect.invocation == invocation and effect.task == task and effect.check == check
            for effect in self.journal.of("commit")
        )

    def terminal_callbacks(self, task: str) -> list[Effect]:
        return [effect for effect in self.journal.of("callback") if effect.task == task]

    def events_of(self, task: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["detail"]["taskId"] == task]


class ChaosRun:
    """The driver: producers, the poll queue, Lambda's event sources, the chaos, and the journal."""

    def __init__(self, stack: Stack, settings: Settings, emulator: Emulator, clock: VirtualClock) -> None:
        self.stack = stack
        self.settings = settings
        self.emulator = emulator
        self.clock = clock
        self.rng = random.Random(SEED)
        self.journal = Journal()
        self.callbacks = StepFunctions()
        base = Wiring.from_settings(settings)
        api = AsposeApi(emulator.url, lambda: Credentials("chaos", "secret"), clock=clock)
        self.base = replace(base, collaborators=replace(base.collaborators, api=api, clock=clock))
        self.queue: list[Message] = []
        self.dead: list[Message] = []
        self.eventbridge: list[EventDelivery] = []
        self.tasks: dict[str, Task] = {}
        self.tokens: dict[str, str] = {}
        self.counters: Counter[str] = Counter()
        self.numbers = itertools.count(1)
        self.steps = itertools.count()
        self.lock = threading.Lock()
        self.bodies: Counter[str] = Counter()
        self.item_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self.fired: set[tuple[str, str]] = set()
        self.planned: set[tuple[str, str]] = set()
        sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=stack.region)
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    # The producers

    def make_tasks(self) -> None:
        start = self.clock()
        for _ in range(TASK_COUNT):
            endpoint, sample, result_type = self.rng.choice(SUBMISSIONS)
            roll = self.rng.random()
            expected = (
                "NotExist"
                if roll < NOT_EXIST_SHARE
                else "Error"
                if roll < NOT_EXIST_SHARE + ERROR_SHARE
                else "Completed"
            )
            trigger = "eventbridge" if self.rng.random() < EVENTBRIDGE_SHARE else "sqs"
            has_token = self.rng.random() < TOKEN_SHARE
            starts_at = start + self.rng.uniform(0, START_WINDOW_SECONDS)
            if expected == "NotExist":
                task_id, body = str(uuid.UUID(int=self.rng.getrandbits(128), version=4)), None
            else:
                body = submission_body(endpoint, (SAMPLES / sample).read_bytes(), result_type=result_type)
                task_id = self.emulator.submit(endpoint, body)
            token = f"sfn-token-{task_id}" if has_token else None
            task = Task(task_id, endpoint, expected, trigger, token, starts_at, body)
            if expected == "Error":
                # Transient failures first (the poller backs off), then Error for good: the task never
                # completes, however many checks a crash repeats.
                task.error_after = self.rng.randint(1, 3)
                if task.error_after > 1:
                    self.emulator.inject(task_id, "server-error", status=503, times=task.error_after - 1)
                self.emulator.inject(task_id, "error", times=-1, message=f"chaos error of {task_id}")
            self.tasks[task_id] = task
            if token:
                self.tokens[token] = task_id
        self.curse()
        self.plan()
        for task in self.tasks.values():
            self.produce(task)

    def curse(self) -> None:
        """Pick the cursed tasks: running ones (Completed), so every point is on their way."""
        for trigger, points in (
            ("sqs", CURSED_TWINS),
            ("sqs", CURSED_SQS),
            ("eventbridge", CURSED_EVENTBRIDGE),
        ):
            candidates = [
                t
                for t in self.tasks.values()
                if t.trigger == trigger and t.expected == "Completed" and t.cursed is None
            ]
            for task, point in zip(
                self.rng.sample(candidates, min(len(points), len(candidates))), points, strict=False
            ):
                task.cursed, task.twinned = point, points is CURSED_TWINS

    def plan(self) -> None:
        """Give every point (but the claim's, reached only after a lease ran out) one planned kill, on a task
        that makes that call: one that completes after a first check that finds it running (and has a task
        token, for the callback's points)."""
        start = min(task.starts_at for task in self.tasks.values())
        candidates = [
            t
            for t in self.tasks.values()
            if t.expected == "Completed" and t.cursed is None and t.starts_at < start + PROCESSING_SECONDS / 2
        ]
        self.rng.shuffle(candidates)
        candidates.sort(key=lambda task: task.token is None)  # those with a token first, for the callbacks
        points = sorted(PLANNED, key=lambda point: point[0] != "stepfunctions.callback")
        for task, point in zip(candidates, points, strict=False):
            if point[0] == "stepfunctions.callback" and task.token is None:
                continue
            task.planned = point
            self.planned.add(point)

    def produce(self, task: Task) -> None:
        if task.trigger == "sqs":
            body = json.dumps(task.request())
            self.put(Message(str(uuid.uuid4()), body, task.starts_at, "producer"), ghosts=not task.twinned)
            if self.rng.random() < PRODUCER_DUPLICATE_SHARE and not task.twinned:
                later = self.rng.uniform(0, 3) if self.rng.random() < 0.7 else self.rng.uniform(300, 3000)
                self.put(Message(str(uuid.uuid4()), body, task.starts_at + later, "producer-duplicate"))
                self.counters["producer duplicates"] += 1
            return
        event = eventbridge_event(task.request())
        heapq.heappush(self.eventbridge, EventDelivery(task.starts_at, next(self.numbers), event))
        if self.rng.random() < PRODUCER_DUPLICATE_SHARE:
            # EventBridge delivers at least once: the same event (same id) again, a little later.
            later = task.starts_at + self.rng.uniform(0, 30)
            heapq.heappush(self.eventbridge, EventDelivery(later, next(self.numbers), event))
            self.counters["EventBridge duplicates"] += 1

    def put(self, message: Message, ghosts: bool = True) -> None:
        """A message on the poll queue, sometimes with a ghost: SQS delivering its id once more, later."""
        with self.lock:
            self.queue.append(message)
            self.bodies[message.body] += 1
            # Drawn from the message, not from the run's generator: successors are sent from many threads.
            draw = random.Random(f"{SEED}:ghost:{message.body}:{message.origin}:{self.bodies[message.body]}")
            if ghosts and self.chaos and draw.random() < GHOST_SHARE:
                later = draw.uniform(0, 3) if draw.random() < 0.7 else draw.uniform(300, 2000)
                ghost = Message(message.id, message.body, message.visible_at + later, "ghost", ghost=True)
                self.queue.append(ghost)
                self.counters["SQS duplicates (same id)"] += 1

    # The driver

    chaos = True

    def run(self) -> None:
        self.make_tasks()
        self.drive()
        self.chaos = False
        redriven = [m for m in self.dead]
        self.dead = []
        for message in redriven:
            self.queue.append(Message(str(uuid.uuid4()), message.body, self.clock(), "redrive"))
        self.counters["redriven from the DLQ"] = len(redriven)
        self.drive()

    def drive(self) -> None:
        while True:
            live = [m for m in self.queue if not m.deleted]
            due = [m.visible_at for m in live] + ([self.eventbridge[0].at] if self.eventbridge else [])
            if not due:
                return
            assert next(self.steps) < MAX_STEPS, "the run does not end"
            self.clock.advance_to(min(due))
            now = self.clock()
            if self.eventbridge and self.eventbridge[0].at <= now:
                self.deliver_event(heapq.heappop(self.eventbridge))
                continue
            visible = [m for m in live if m.visible_at <= now]
            self.rng.shuffle(visible)
            size = self.rng.randint(1, BATCH_SIZE)
            batch: list[Message] = []
            for message in visible:
                if message.receives >= MAX_RECEIVES:
                    message.deleted = True
                    self.dead.append(message)
                    self.counters["dead-lettered after 5 receives"] += 1
                elif len(batch) < size:
                    batch.append(message)
            if batch:
                self.deliver_messages(batch)

    def receive(self, message: Message) -> MessageTypeDef:
        message.receives += 1
        message.visible_at = self.clock() + VISIBILITY_TIMEOUT_SECONDS
        return {
            "MessageId": message.id,
            "ReceiptHandle": str(uuid.uuid4()),
            "Body": message.body,
            "Attributes": {"ApproximateReceiveCount": str(message.receives)},
        }

    def acknowledge(self, message_id: str) -> None:
        """Delete the message: every copy SQS holds of it, but not a ghost still to come."""
        for message in self.queue:
            if message.id == message_id and (not message.ghost or message.receives):
                message.deleted = True

    def deliver_messages(self, batch: list[Message]) -> None:
        twinned = [m for m in batch if m.origin == "producer" and not m.receives and self.twinned(m)]
        if twinned:
            # Alone, twice at once; neither copy commits before both have read the record.
            message = twinned[0]
            rendezvous = threading.Barrier(2, timeout=30)
            runs = [([message], self.invocation("sqs", [message], rendezvous=rendezvous)) for _ in range(2)]
            self.counters["concurrent copies"] += 1
        else:
            runs = [(batch, self.invocation("sqs", batch))]
            if self.chaos and self.rng.random() < TWIN_SHARE:
                twin = self.rng.choice(batch)
                runs.append(([twin], self.invocation("sqs", [twin])))
                self.counters["concurrent copies"] += 1
        events = [
            sqs_event([self.receive(m) for m in messages], self.queue_arn, self.stack.region)
            for messages, _ in runs
        ]
        outcomes = self.concurrently(
            [(invocation, event) for (_, invocation), event in zip(runs, events, strict=True)]
        )
        for (messages, invocation), outcome in zip(runs, outcomes, strict=True):
            if not isinstance(outcome, dict):
                continue  # killed or crashed: SQS brings every message back after the visibility timeout
            failed = {failure["itemIdentifier"] for failure in outcome.get("batchItemFailures", [])}
            self.counters["batch item failures"] += len(failed)
            for message in messages:
                if message.id not in failed:
                    invocation.acknowledged.add(message.id)
                    self.acknowledge(message.id)

    def twinned(self, message: Message) -> bool:
        try:
            request = parse_body(message.body, default_endpoint=self.settings.default_endpoint)
        except Refused:
            return False
        return self.chaos and self.tasks[request.task_id].twinned

    def deliver_event(self, delivery: EventDelivery) -> None:
        deliveries = [delivery]
        if self.chaos and self.rng.random() < TWIN_SHARE:
            deliveries.append(EventDelivery(delivery.at, next(self.numbers), delivery.event))
            self.counters["concurrent copies"] += 1
        runs = [(self.invocation("eventbridge", [], event=d.event), d.event) for d in deliveries]
        for (invocation, _), copy, outcome in zip(runs, deliveries, self.concurrently(runs), strict=True):
            if isinstance(outcome, dict):
                invocation.acknowledged.add(copy.event["id"])
                continue
            self.counters["failed EventBridge invocations"] += 1
            if copy.attempt <= LAMBDA_RETRIES:
                at = self.clock() + LAMBDA_RETRY_DELAYS[copy.attempt - 1]
                heapq.heappush(
                    self.eventbridge, EventDelivery(at, next(self.numbers), copy.event, copy.attempt + 1)
                )
            else:
                self.dead.append(
                    Message(str(uuid.uuid4()), json.dumps(on_failure(copy.event, outcome)), 0.0, "on-failure")
                )
                self.counters["dead-lettered by Lambda's on-failure destination"] += 1

    def invocation(
        self,
        source: str,
        messages: list[Message],
        *,
        event: dict[str, Any] | None = None,
        rendezvous: threading.Barrier | None = None,
    ) -> Invocation:
        bodies = [m.body for m in messages] if event is None else [json.dumps(event["detail"])]
        requests = []
        for body in bodies:
            try:
                request = parse_body(body, default_endpoint=self.settings.default_endpoint)
            except Refused:
                continue
            requests.append((request.task_id, request.for_check))
        number = next(self.numbers)
        armed = (
            self.chaos
            and rendezvous is None
            and random.Random(f"{SEED}:armed:{number}").random() < ARMED_SHARE
        )
        cursed = {
            task_id: task.cursed
            for task_id, _ in requests
            if self.chaos and (task := self.tasks[task_id]).cursed is not None
        }
        invocation = Invocation(number, source, requests, armed, self.chaos, cursed, rendezvous=rendezvous)
        invocation.deliveries = [m.id for m in messages] if event is None else [event["id"]]
        self.journal.invocations[number] = invocation
        return invocation

    def concurrently(
        self, runs: list[tuple[Invocation, dict[str, Any]]]
    ) -> list[dict[str, Any] | BaseException]:
        """Invoke the handler once per run, all started together; each one's response, or how it died."""
        outcomes: list[dict[str, Any] | BaseException] = [Killed("not run")] * len(runs)
        barrier = threading.Barrier(len(runs))

        def invoke(index: int) -> None:
            invocation, event = runs[index]
            barrier.wait()
            outcomes[index] = self.invoke(invocation, event)

        if len(runs) == 1:
            outcomes[0] = self.invoke(*runs[0])
            return outcomes
        threads = [threading.Thread(target=invoke, args=(index,)) for index in range(len(runs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return outcomes

    def invoke(self, invocation: Invocation, event: dict[str, Any]) -> dict[str, Any] | BaseException:
        deps = self.base.collaborators
        wrapped = {
            name: Chaotic(getattr(deps, name), name, invocation, self)
            for name in ("api", "results", "records", "queue", "announcer")
        }
        wrapped["callbacks"] = Chaotic(self.callbacks, "callbacks", invocation, self)
        wiring = replace(self.base, collaborators=replace(deps, **cast(dict[str, Any], wrapped)))
        self.counters[f"{invocation.source} invocations"] += 1
        try:
            response = handler.lambda_handler(event, LocalContext(), wiring)
        except Killed as exc:
            outcome: dict[str, Any] | BaseException = exc
        except Exception as exc:  # the function failed: Lambda retries an EventBridge event
            self.counters[f"{type(exc).__name__} raised by the handler"] += 1
            outcome = exc
        else:
            outcome = dict(response)
        invocation.outcome = repr(outcome)[:200]
        for check in invocation.checks.values():
            check.fate = "killed" if invocation.killed else "unresolved"
        return outcome

    # What the wrappers tell the journal

    def item_lock(self, task: str) -> threading.Lock:
        with self.lock:
            return self.item_locks[task]

    def subject(self, adapter: str, method: str, args: tuple[Any, ...]) -> tuple[str, int | None]:
        """The task (and check) a collaborator's call is about."""
        if adapter == "records" and method != "get":
            return args[0].task_id, args[0].check_number
        if adapter == "queue" and method == "send":
            return args[0].task_id, args[0].for_check - 1
        if adapter == "announcer":
            return args[1]["taskId"], args[1]["attempts"]
        if adapter == "callbacks":
            return self.tokens.get(args[0], "?"), None
        if adapter == "api":
            return args[1], None
        if adapter == "results" and method == "delete":
            return args[0][0].key.split("/")[-2] if args[0] else "?", None
        return str(args[0]), None

    def before(self, invocation: Invocation, point: str | None, task: str) -> None:
        self._may_crash(invocation, point, "before", task, dead=f"invocation {invocation.number} is dead")

    def after(self, invocation: Invocation, point: str | None, task: str) -> None:
        # Another thread may have killed the invocation while this call was in flight: it happened, this
        # thread dies now.
        dead = f"invocation {invocation.number} died during the call"
        self._may_crash(invocation, point, "after", task, dead=dead)

    def _may_crash(
        self, invocation: Invocation, point: str | None, side: str, task: str, *, dead: str
    ) -> None:
        """Die with the invocation if it was killed, else fail or kill it here if the plan says so."""
        with invocation.lock:
            if invocation.killed is not None:
                self.close_checks(invocation, "killed")
                raise Killed(dead)
            crash = None if point is None else self.crashes(invocation, point, side, task)
            if crash == "failure":
                self.close_checks(invocation, "failed", task)
                raise Failure(f"injected failure {side} {point}")
            if crash == "kill":
                self.close_checks(invocation, "killed")
                raise Killed(f"killed {side} {point}")

    def crashes(self, invocation: Invocation, point: str, side: str, task: str) -> str | None:
        """Whether to kill the invocation here, or fail the call (the caller holds its lock); logs it."""
        if not invocation.chaos:
            return None
        cursed = invocation.cursed.get(task) == (point, side)
        with self.lock:
            planned = (subject := self.tasks.get(task)) is not None and subject.planned == (point, side)
            if planned and subject is not None:
                subject.planned = None  # once
        key = (task, point, side)
        occurrence = invocation.occurrences[key]
        invocation.occurrences[key] += 1
        odds = random.Random(f"{SEED}:{invocation.number}:{task}:{point}:{side}:{occurrence}").random()
        # Points no kill has hit yet get better odds, so that every one is hit early in the run.
        boost = 1 if (point, side) in self.fired else 3
        if not cursed and not planned and not (invocation.armed and odds < boost * CRASH_ODDS[point]):
            return None
        kind = "kill"
        if not cursed and not planned and random.Random(f"{SEED}:{odds}:kind").random() < FAILURE_SHARE:
            kind = "failure"
        crash = Kill(invocation.number, point, side, task, self.journal.next_order(), cursed, kind)
        self.journal.kill(crash)
        if kind == "failure":
            invocation.failures.append(crash)
            return kind
        self.fired.add((point, side))
        invocation.killed = crash
        return kind

    def close_checks(self, invocation: Invocation, fate: str, task: str | None = None) -> None:
        """Settle this thread's open checks (of one task, or all)."""
        thread = threading.get_ident()
        for (owner, checked), check in list(invocation.checks.items()):
            if owner == thread and task in (None, checked):
                check.fate = fate
                del invocation.checks[(owner, checked)]

    def performed(
        self,
        invocation: Invocation,
        adapter: str,
        method: str,
        task: str,
        check: int | None,
        args: Any,
        result: Any,
    ) -> None:
        if adapter == "api":
            self.open_check(invocation, task)
            return
        if adapter == "queue" and method == "send":
            body = json.dumps(args[0].to_message(), separators=(",", ":"))
            self.put(Message(str(uuid.uuid4()), body, self.clock() + args[1], "successor"))
        if adapter == "records" and method == "commit":
            with invocation.lock:
                self.close_checks(invocation, "committed" if result else "lost", task)
        if (adapter, method) in (("records", "commit"), ("records", "claim")) and not result:
            return
        if adapter == "records" and method == "get" or adapter == "results":
            return
        what = {"heartbeat": "heartbeat", "succeed": "callback", "fail": "callback"}.get(method, method)
        detail = args[1] if method in ("fail", "announce") else args[0] if method == "commit" else None
        self.journal.effect(invocation, task, check, what, detail)

    def failed(
        self, invocation: Invocation, adapter: str, method: str, task: str, exc: BaseException
    ) -> None:
        if adapter == "api" and isinstance(exc, Killed | Failure):
            # The emulator saw the check; the invocation died, or a call failed, in its result sink.
            self.journal.check(
                Check(invocation.number, task, "killed" if isinstance(exc, Killed) else "failed")
            )
            return
        if not isinstance(exc, Killed | Failure):
            self.counters[f"{adapter}.{method} raised {type(exc).__name__}"] += 1
        if adapter == "api":
            self.open_check(invocation, task)  # a transient failure: the record still takes the check

    def open_check(self, invocation: Invocation, task: str) -> None:
        opened = Check(invocation.number, task)
        self.journal.check(opened)
        with invocation.lock:
            invocation.checks[(threading.get_ident(), task)] = opened


def on_failure(event: dict[str, Any], error: BaseException) -> dict[str, Any]:
    """What Lambda's on-failure destination puts on the dead-letter queue for a failed asynchronous event."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:ocr-poller:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": LAMBDA_RETRIES + 1,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__},
    }


# The run, once for the module; each test checks one property of what it left


@pytest.fixture(scope="module")
def chaos(moto_server: MotoServer) -> Iterator[Report]:
    started = time.monotonic()
    stack = deploy_stack(moto_server.url, TEMPLATE_PATH, name_suffix=f"chaos-{uuid.uuid4().hex[:8]}")
    clock = VirtualClock()
    begun = clock()
    with (
        pytest.MonkeyPatch.context() as patch,
        Emulator(processing_seconds=PROCESSING_SECONDS, clock=clock, log_requests=False) as emulator,
    ):
        for name, value in environment(stack, moto_server.url).items():
            patch.setenv(name, value)
        patch.setenv("ASPOSE_BASE_URL", emulator.url)
        patch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        for level in ("info", "warning"):  # a line per request, a traceback per redelivery: noise here
            patch.setattr(observability.logger, level, lambda *args, **kwargs: None)
        parameters.clear_caches()  # type: ignore[no-untyped-call]
        print(f"chaos seed {SEED} (CHAOS_SEED={SEED} CHAOS_TASKS={TASK_COUNT} to rerun)")
        settings = Settings.from_env()
        run = ChaosRun(stack, settings, emulator, clock)
        run.run()
        yield collect(run, stack, settings, clock() - begun, time.monotonic() - started)


def collect(run: ChaosRun, stack: Stack, settings: Settings, virtual: float, real: float) -> Report:
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    table = boto3.resource("dynamodb", endpoint_url=endpoint, region_name=stack.region).Table(
        stack.table_name
    )
    records: dict[str, dict[str, Any]] = {}
    scan: dict[str, Any] = {"ConsistentRead": True}
    while True:
        scanned = table.scan(**scan)
        records.update({str(item["taskId"]): item for item in scanned["Items"]})
        if "LastEvaluatedKey" not in scanned:
            break
        scan["ExclusiveStartKey"] = scanned["LastEvaluatedKey"]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=stack.region)
    objects: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.bucket_name, Prefix=settings.results_prefix
    ):
        for item in page.get("Contents", []):
            objects[item["Key"]] = s3.get_object(Bucket=stack.bucket_name, Key=item["Key"])["Body"].read()
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=stack.region)
    names: list[QueueAttributeNameType] = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesDelayed",
        "ApproximateNumberOfMessagesNotVisible",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=names)["Attributes"]
    events: list[dict[str, Any]] = []
    while batch := completion_events(stack, endpoint):
        events += batch
    return Report(
        seed=SEED,
        tasks=run.tasks,
        journal=run.journal,
        records=records,
        objects=objects,
        events=events,
        checks_seen={task: run.emulator.checks(task) for task in run.tasks},
        queue_messages=sum(int(attributes.get(name, "0")) for name in names),
        prefix=settings.results_prefix,
        bucket=stack.bucket_name,
        counters=run.counters,
        planned=run.planned,
        messages=run.queue + run.dead,
        virtual_seconds=virtual,
        real_seconds=real,
    )


def _summary(report: Report) -> str:
    """One paragraph: the tasks, the chaos, what the function did, and each repeat with its explanation."""
    tasks = report.tasks.values()
    triggers = Counter(task.trigger for task in tasks)
    kills = Counter(f"{kill.point} {kill.side}" for kill in report.journal.kills if kill.kind == "kill")
    failures = Counter(f"{kill.point} {kill.side}" for kill in report.journal.kills if kill.kind == "failure")
    fates = Counter(check.fate for check in report.journal.checks)
    attempts = sum(int(record["attempts"]) for record in report.records.values())
    lost = report.lost()
    _, successors = report.successor_repeats()
    _, events = report.unexplained_once_effects("announce")
    _, callbacks = report.unexplained_once_effects("callback")
    return (
        f"Chaos seed {report.seed}: {len(report.tasks)} tasks ({triggers['sqs']} by SQS, "
        f"{triggers['eventbridge']} by EventBridge, {sum(t.token is not None for t in tasks)} with a task "
        f"token; expected {dict(Counter(t.expected for t in tasks))}) over {report.virtual_seconds:,.0f} "
        f"virtual s in {report.real_seconds:.0f} real s; "
        + ", ".join(f"{value} {name}" for name, value in sorted(report.counters.items()))
        + f". {kills.total()} invocations killed "
        f"({sum(kill.cursed for kill in report.journal.kills)} of them cursed tasks'): "
        + ", ".join(f"{point} {count}" for point, count in sorted(kills.items()))
        + f"; {failures.total()} calls failed: "
        + ", ".join(f"{point} {count}" for point, count in sorted(failures.items()))
        + f". {len(report.journal.checks)} API checks for {attempts} recorded attempts ("
        + ", ".join(f"{count} {fate}" for fate, count in sorted(fates.items()))
        + f"). Repeats: {len(successors)} successors ({'; '.join(successors) or 'none'}); "
        f"{len(events)} completion events ({'; '.join(events) or 'none'}); "
        f"{len(callbacks)} callbacks ({'; '.join(callbacks) or 'none'}). "
        f"Lost: {lost or 'none'}."
    )


def test_chaos_run_covers_every_kind_of_chaos(chaos: Report, capsys: pytest.CaptureFixture[str]) -> None:
    # Given the run, When it is summed up
    summary = _summary(chaos)
    with capsys.disabled():
        print("\n" + summary)
    # Then it killed invocations at every point on a chain's way, and had duplicates, copies and a redrive
    fired = {(kill.point, kill.side) for kill in chaos.journal.kills if kill.kind == "kill"}
    assert chaos.planned - fired == set(), summary
    assert len(chaos.planned) == len(PLANNED) or TASK_COUNT < 60, summary
    assert chaos.counters["concurrent copies"] and chaos.counters["producer duplicates"], summary
    assert chaos.counters["redriven from the DLQ"] and chaos.counters["eventbridge invocations"], summary


def test_nothing_lost(chaos: Report) -> None:
    # Then every task ended as its API said: its record final, its end announced (and called back)
    lost = chaos.lost()
    stories = "\n\n".join(chaos.story(task_id) for task_id in lost)
    assert lost == {}, f"seed {chaos.seed}: {len(lost)} tasks lost\n{stories}"
    assert set(chaos.records) == set(chaos.tasks)


def test_an_eventbridge_task_whose_invocation_died_after_its_commit_still_ends(chaos: Report) -> None:
    # Given the EventBridge tasks cursed to die after their first check's commit, before its effects
    # (Lambda retries such an invocation 1 and 3 minutes later: inside the lease, the invocation's end + 5 s)
    cursed = [
        task
        for task in chaos.tasks.values()
        if task.trigger == "eventbridge"
        and task.cursed in (("sqs.send", "before"), ("dynamodb.commit", "after"))
    ]
    # Then each one still ended and was announced (found by this run: the retries were dropped as duplicates)
    assert cursed, f"seed {chaos.seed}: no such task"
    lost = [task.id for task in cursed if task.id in chaos.lost()]
    assert lost == [], f"seed {chaos.seed}:\n" + "\n\n".join(chaos.story(task_id) for task_id in lost)


def test_a_copy_that_lost_the_commit_leaves_the_holders_message_on_the_queue(chaos: Report) -> None:
    # Given the tasks whose first message went to two invocations at once, both reading before either commits,
    # the one that commits cursed to die before its successor
    twinned = [task for task in chaos.tasks.values() if task.twinned]
    assert twinned, f"seed {chaos.seed}: no such task"
    for task in twinned:
        # Then the copy that lost the commit failed its record instead of deleting the holder's message
        # (found by this run: it returned DUPLICATE, the message was deleted, and the task was lost)
        [first] = [m.id for m in chaos.messages if m.origin == "producer" and task.id in m.body]
        losers = chaos.copies_that_lost_the_commit(task.id, first)
        assert losers, chaos.story(task.id)
        assert all(first not in loser.acknowledged for loser in losers), chaos.story(task.id)
        # and the task ended
        assert task.id not in chaos.lost(), chaos.story(task.id)


def test_no_fork(chaos: Report) -> None:
    # Then each check was committed once, every extra API check is a lost commit or a killed invocation's,
    checks_by_task: dict[str, Counter[str]] = defaultdict(Counter)
    for check in chaos.journal.checks:
        checks_by_task[check.task][check.fate] += 1
    commits = Counter((effect.task, effect.check) for effect in chaos.journal.of("commit"))
    for task_id, record in chaos.records.items():
        attempts = int(record["attempts"])
        fates = checks_by_task[task_id]
        assert [commits[(task_id, n)] for n in range(1, attempts + 1)] == [1] * attempts, chaos.story(task_id)
        assert chaos.checks_seen[task_id] == sum(fates.values()), (task_id, fates)
        assert fates["committed"] == attempts, (task_id, fates)
        assert set(fates) <= {"committed", "lost", "killed", "failed"}, (task_id, fates)
    # and every successor sent more than once for one check was sent by a claim while the next check
    # could not be committed because a delivery of it had been killed
    unexplained, _ = chaos.successor_repeats()
    assert unexplained == [], f"seed {chaos.seed}"
    # (the journal saw every SendMessage: moto's poll queue holds as many)
    assert chaos.queue_messages == len(chaos.journal.of("send"))


def test_exact_bytes(chaos: Report) -> None:
    # Then each completed task's objects are the API's results to the byte, and nothing else is stored
    listed: set[str] = set()
    for task_id, record in chaos.records.items():
        task = chaos.tasks[task_id]
        results = record.get("results", [])
        listed |= {result["key"] for result in results}
        if record["status"] != "Completed":
            assert results == [], task_id
            continue
        assert task.body is not None
        expected = [
            (
                r.type,
                len(r.data),
                hashlib.sha256(r.data).hexdigest(),
                result_key(chaos.prefix, task_id, i, r.type),
            )
            for i, r in enumerate(results_for(task.endpoint, task.body))
        ]
        assert [(r["type"], int(r["size"]), r["sha256"], r["key"]) for r in results] == expected, task_id
        for result in results:
            body = chaos.objects[result["key"]]
            assert (len(body), hashlib.sha256(body).hexdigest()) == (int(result["size"]), result["sha256"])
    stray = sorted(set(chaos.objects) - listed)
    stories = "\n\n".join(chaos.story(key.split("/")[-2]) for key in stray)
    assert stray == [], f"seed {chaos.seed}: objects no record lists\n{stories}"
    assert listed <= set(chaos.objects)


def test_one_completion_event_per_task(chaos: Report) -> None:
    # Then a task announced its end once, unless a kill between put_events and mark_sent explains another
    unexplained, _ = chaos.unexplained_once_effects("announce")
    assert unexplained == [], f"seed {chaos.seed}: " + "\n\n".join(
        chaos.story(u.split()[3]) for u in unexplained
    )
    assert len(chaos.events) == len(chaos.journal.of("announce"))
    for task_id, record in chaos.records.items():
        events = chaos.events_of(task_id)
        if record["stage"] != "sent":
            continue  # not announced: test_nothing_lost reports it
        assert events, task_id
        for event in events:
            detail = event["detail"]
            assert event["detail-type"] == (
                "OCR Task Completed" if record["status"] == "Completed" else "OCR Task Failed"
            )
            assert (detail["status"], detail["attempts"]) == (record["status"], int(record["attempts"]))
            assert [r["sha256"] for r in detail["results"]] == [
                r["sha256"] for r in record.get("results", [])
            ]


def test_one_callback_per_task_with_a_token(chaos: Report) -> None:
    # Then a workflow waiting on a task heard of its end once, unless a kill before mark_sent explains another
    unexplained, _ = chaos.unexplained_once_effects("callback")
    assert unexplained == [], f"seed {chaos.seed}: " + "\n\n".join(
        chaos.story(u.split()[3]) for u in unexplained
    )
    for task_id, task in chaos.tasks.items():
        callbacks = chaos.terminal_callbacks(task_id)
        record = chaos.records.get(task_id)
        if task.token is None or record is None or record["stage"] != "sent":
            assert task.token is not None or callbacks == [], task_id
            continue
        assert callbacks, task_id
        status = record["status"]
        assert all(
            (c.detail is None) if status == "Completed" else c.detail == f"OCR.{status}" for c in callbacks
        ), (task_id, status, [c.detail for c in callbacks])
