"""Figure 1: the poll schedule, replayed through `poll.process_body` on a simulated clock.

Each simulated task goes through the poller's real per-record code path (request parsing, the record's
conditional write, the decision table, `Backoff.delay`); only the collaborators are fakes, and they move
a simulated clock by the time each step would take. Nothing sleeps.
"""

from __future__ import annotations

import bisect
import json
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ocr_poller.model import Answer, Status, StoredResult, TaskRecord
from ocr_poller.poll import Action, Collaborators, Delivery, ResultSink, process_body
from ocr_poller.request import PollRequest
from ocr_poller.schedule import Backoff

EPOCH = 1_750_000_000.0  # the simulated clock starts at a plausible epoch time, as time.time() would
SQS_MAX_DELAY = 900


@dataclass(frozen=True)
class TaskMix:
    """Task run times (first check to completion): log-normal, short labels and long PDFs."""

    label_share: float = 0.7
    label_median: float = 4.0
    label_sigma: float = 0.6
    pdf_median: float = 60.0
    pdf_sigma: float = 1.0

    def draw(self, rng: random.Random) -> tuple[str, float]:
        """The endpoint and run time of one task."""
        if rng.random() < self.label_share:
            return "RecognizeLabel", rng.lognormvariate(math.log(self.label_median), self.label_sigma)
        return "RecognizePdf", rng.lognormvariate(math.log(self.pdf_median), self.pdf_sigma)

    def describe(self) -> str:
        """One line for the report."""
        return (
            f"{self.label_share:.0%} labels (log-normal, median {self.label_median:g} s, sigma "
            f"{self.label_sigma:g}), {1 - self.label_share:.0%} PDFs (median {self.pdf_median:g} s, sigma "
            f"{self.pdf_sigma:g})"
        )


class CheckTiming(NamedTuple):
    """Simulated seconds taken by the steps around one check."""

    invoke: float  # the message is delivered -> checked_at (warm start, GetItem)
    api_out: float  # checked_at -> the API reads the task's status
    api_back: float  # the API's answer travels back and is parsed
    commit: float  # PutItem of the record
    send: float  # SendMessage of the successor
    delivery: float  # the successor's delay is over -> Lambda is handed the message


@dataclass(frozen=True)
class Timing:
    """Uniform ranges of each step of CheckTiming."""

    delivery: tuple[float, float] = (0.0, 1.0)
    invoke: tuple[float, float] = (0.005, 0.030)
    api_out: tuple[float, float] = (0.020, 0.080)
    api_back: tuple[float, float] = (0.030, 0.150)
    commit: tuple[float, float] = (0.005, 0.020)
    send: tuple[float, float] = (0.005, 0.020)

    def draw(self, rng: random.Random) -> CheckTiming:
        """The timing of one check."""
        return CheckTiming(
            rng.uniform(*self.invoke),
            rng.uniform(*self.api_out),
            rng.uniform(*self.api_back),
            rng.uniform(*self.commit),
            rng.uniform(*self.send),
            rng.uniform(*self.delivery),
        )

    def describe(self) -> str:
        """One line for the report."""
        ms = [
            f"{name} {low * 1000:g}-{high * 1000:g} ms"
            for name, (low, high) in (
                ("invocation+GetItem", self.invoke),
                ("API request", self.api_out),
                ("API answer", self.api_back),
                ("PutItem", self.commit),
                ("SendMessage", self.send),
            )
        ]
        low, high = self.delivery
        return f"delivery after the SQS delay U({low:g}, {high:g}) s; " + ", ".join(ms)


@dataclass
class SimTask:
    """One task of the mix with its own stream of check timings (the same for every schedule)."""

    task_id: str
    endpoint: str
    run_time: float
    timing: Timing
    seed: str
    _timings: list[CheckTiming] = field(default_factory=list, init=False, repr=False)
    _rng: random.Random | None = field(default=None, init=False, repr=False)

    def check(self, index: int) -> CheckTiming:
        """The timing of the task's check number `index` (0-based)."""
        if self._rng is None:
            self._rng = random.Random(self.seed)
        while len(self._timings) <= index:
            self._timings.append(self.timing.draw(self._rng))
        return self._timings[index]


def make_tasks(count: int, mix: TaskMix, timing: Timing, seed: int) -> list[SimTask]:
    """`count` tasks of the mix, reproducible from the seed."""
    rng = random.Random(seed)
    tasks = []
    for index in range(count):
        endpoint, run_time = mix.draw(rng)
        tasks.append(SimTask(f"task-{index:06d}", endpoint, run_time, timing, f"{seed}:{index}"))
    return tasks


# --- fakes that move the simulated clock ---------------------------------------------------------


@dataclass
class Timeline:
    """The simulated clock and the timing of the check in progress."""

    now: float = EPOCH
    step: CheckTiming = CheckTiming(0, 0, 0, 0, 0, 0)
    finish_at: float | None = None  # when the task in progress completes (known after its first check)
    run_time: float = 0.0
    seen_at: float | None = None  # when a check first read Completed

    def __call__(self) -> float:
        return self.now


@dataclass
class SimApi:
    """Answers Pending/Processing until the task's run time has passed since its first status read."""

    line: Timeline

    def check(
        self, endpoint: str, task_id: str, on_result: ResultSink, *, until: float
    ) -> Answer[StoredResult]:
        self.line.now += self.line.step.api_out
        if self.line.finish_at is None:
            self.line.finish_at = self.line.now + self.line.run_time
        done = self.line.now >= self.line.finish_at
        if done:
            self.line.seen_at = self.line.now
        self.line.now += self.line.step.api_back
        if not done:
            return Answer(task_id, "Processing", "NotReady", (), (), ())
        stored = on_result(0, "Text", iter([b"recognized text"]))
        return Answer(task_id, "Completed", "Ok", (), (), (stored,))


@dataclass
class SimResults:
    """Accepts results without keeping them."""

    def put(self, task_id: str, index: int, result_type: str, chunks: Iterator[bytes]) -> StoredResult:
        size = sum(len(chunk) for chunk in chunks)
        return StoredResult(result_type, "bucket", f"results/{task_id}/{index}", "text/plain", size, "")

    def delete(self, results: Sequence[StoredResult]) -> None:
        """Nothing is kept, so nothing to delete."""


@dataclass
class SimRecords:
    """Task records in a dict, with the conditional write's semantics."""

    line: Timeline
    items: dict[str, TaskRecord] = field(default_factory=dict)

    def get(self, task_id: str) -> TaskRecord | None:
        return self.items.get(task_id)  # its time is part of CheckTiming.invoke

    def commit(self, record: TaskRecord) -> bool:
        self.line.now += self.line.step.commit
        current = self.items.get(record.task_id)
        if current is not None and current.check_number != record.check_number - 1:
            return False
        self.items[record.task_id] = record
        return True

    def claim(self, record: TaskRecord, *, now: float) -> bool:
        raise AssertionError("the simulation never redelivers a check")

    def release(self, record: TaskRecord) -> None:
        raise AssertionError("the simulation's effects never fail")

    def mark_sent(self, record: TaskRecord) -> None:
        """Only at the end: takes no time the schedule sees."""


@dataclass
class SimQueue:
    """Remembers the successor and when it becomes visible."""

    line: Timeline
    successor: PollRequest | None = None
    visible_at: float = 0.0

    def send(self, request: PollRequest, delay_seconds: int) -> None:
        self.line.now += self.line.step.send
        self.successor = request
        self.visible_at = self.line.now + delay_seconds

    def dead_letter(self, body: str, reason: str) -> bool:
        raise AssertionError(f"the simulation sent an invalid request: {reason}")


class SimAnnouncer:
    """Completion events and callbacks are not part of the schedule."""

    def announce(self, status: Status, detail: dict[str, Any]) -> None:
        """Nothing to announce to."""


class SimCallbacks:
    """The simulation's requests carry no task token."""

    def heartbeat(self, token: str) -> str | None:
        raise AssertionError("no task token, no heartbeat")

    def succeed(self, token: str, output: str) -> str | None:
        raise AssertionError("no task token, no callback")

    def fail(self, token: str, error: str, cause: str) -> str | None:
        raise AssertionError("no task token, no callback")


# --- schedules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cadence(Backoff):
    """A naive schedule: fixed delays repeated in turn, or doubling; `spent` and the promise ignored."""

    delays: tuple[int, ...] = (2,)
    doubling: bool = False
    _checks: list[int] = field(default_factory=lambda: [0], compare=False, init=False, repr=False)

    def reset(self) -> None:
        """Start over for the next task."""
        self._checks[0] = 0

    def delay(
        self,
        *,
        elapsed: float,
        spent: float = 0.0,
        transient_failures: int = 0,
        retry_after: float | None = None,
        remaining: float | None = None,
        rng: Callable[[], float] = random.random,
    ) -> int:
        """The next delay of the cadence."""
        count = self._checks[0]
        self._checks[0] += 1
        if self.doubling:
            return min(self.maximum, self.delays[0] << min(count, 16))
        return self.delays[count % len(self.delays)]


@dataclass(frozen=True)
class Schedule:
    """A named delay policy to replay."""

    name: str
    backoff: Backoff


# --- replay ----------------------------------------------------------------------------------------


class TaskOutcome(NamedTuple):
    """How one task went under one schedule."""

    checks: int
    lag: float  # seconds from completion to the check that saw it
    promise: float  # the longest lag the promise allows for this task


def replay(task: SimTask, schedule: Schedule, *, promise: Callable[[float], float]) -> TaskOutcome:
    """Feed the task's poll requests through process_body until it is seen Completed."""
    line = Timeline(run_time=task.run_time)
    queue = SimQueue(line)
    deps = Collaborators(
        api=SimApi(line),
        results=SimResults(),
        records=SimRecords(line),
        queue=queue,
        announcer=SimAnnouncer(),
        callbacks=SimCallbacks(),
        backoff=schedule.backoff,
        deadline_seconds=86_400,
        default_endpoint="RecognizeLabel",
        clock=line,
    )
    if isinstance(schedule.backoff, Cadence):
        schedule.backoff.reset()
    body = json.dumps({"taskId": task.task_id, "endpoint": task.endpoint})
    index = 0
    while True:
        line.step = task.check(index)
        line.now += line.step.invoke
        delivery = Delivery(f"{task.task_id}-{index}", line.now + 300, from_queue=True)
        outcome = process_body(body, delivery, deps)
        if outcome.action is Action.FINISHED:
            break
        if outcome.action is not Action.REQUEUED or queue.successor is None:
            raise AssertionError(f"unexpected outcome {outcome}")
        line.now = queue.visible_at + line.step.delivery
        body = json.dumps(queue.successor.to_message())
        index += 1
    if outcome.record is None or line.seen_at is None or line.finish_at is None:
        raise AssertionError("a finished task has a record and a completion time")
    return TaskOutcome(outcome.record.check_number, line.seen_at - line.finish_at, promise(task.run_time))


def clairvoyant(task: SimTask, *, promise: Callable[[float], float]) -> TaskOutcome:
    """Fewest checks that keep the promise when each whole-second delay is chosen knowing the delivery
    and invocation times to come (but not the run time): a lower bound for any schedule under the same
    timing. Greedy is optimal: taking the longest allowed delay makes every later check as late as it
    can be, since a later check never allows an earlier next one."""
    first = task.check(0)
    seen_first = first.invoke + first.api_out
    finish = seen_first + task.run_time
    seen = seen_first
    index = 0
    while seen < finish:
        now, then = task.check(index), task.check(index + 1)
        fixed = now.api_back + now.commit + now.send + now.delivery + then.invoke + then.api_out
        delay = min(SQS_MAX_DELAY, max(0, math.floor(promise(seen - seen_first) - fixed)))
        seen += fixed + delay
        index += 1
    return TaskOutcome(index + 1, seen - finish, promise(task.run_time))


@dataclass(frozen=True)
class IdealOptimum:
    """Fewest checks keeping the promise with whole-second delays and nothing else taking time.

    Check times are then whole seconds t0 = 0, t(k+1) = t(k) + min(900, max(initial, floor(ratio * t(k)))):
    the longest gap allowed after each check. As t + max(initial, floor(ratio * t)) grows with t, no
    schedule has its k-th check later than this one, so none needs fewer checks for any run time.
    """

    initial: int
    ratio: float
    times: tuple[int, ...]

    @classmethod
    def build(cls, initial: int, ratio: float, horizon: float) -> IdealOptimum:
        """The check times up to the horizon."""
        times = [0]
        while times[-1] < horizon:
            gap = min(SQS_MAX_DELAY, max(initial, math.floor(ratio * times[-1])))
            times.append(times[-1] + max(1, gap))
        return cls(initial, ratio, tuple(times))

    def checks(self, run_time: float) -> int:
        """Checks until one at or after the run time (the first at 0 included)."""
        return bisect.bisect_left(self.times, run_time) + 1


# --- statistics ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleStats:
    """One schedule over the whole mix."""

    name: str
    mean_checks: float
    mean_checks_label: float
    mean_checks_pdf: float
    on_time: float  # share of tasks seen within the promise
    late_p99: float  # 99th percentile of lag minus promise (negative: early)
    mean_lag: float

    def as_dict(self) -> dict[str, float | str]:
        """JSON form."""
        return {
            "name": self.name,
            "mean_checks": self.mean_checks,
            "mean_checks_label": self.mean_checks_label,
            "mean_checks_pdf": self.mean_checks_pdf,
            "on_time": self.on_time,
            "late_p99": self.late_p99,
            "mean_lag": self.mean_lag,
        }


def summarize(name: str, tasks: Sequence[SimTask], outcomes: Sequence[TaskOutcome]) -> ScheduleStats:
    """Mean checks per kind of task, share on time, lateness."""

    def mean(values: Sequence[float]) -> float:
        return sum(values) / len(values) if values else math.nan

    labels = [o.checks for t, o in zip(tasks, outcomes, strict=True) if t.endpoint == "RecognizeLabel"]
    pdfs = [o.checks for t, o in zip(tasks, outcomes, strict=True) if t.endpoint != "RecognizeLabel"]
    slack = sorted(o.lag - o.promise for o in outcomes)
    return ScheduleStats(
        name=name,
        mean_checks=mean([o.checks for o in outcomes]),
        mean_checks_label=mean(labels),
        mean_checks_pdf=mean(pdfs),
        on_time=sum(1 for o in outcomes if o.lag <= o.promise + 1e-9) / len(outcomes),
        late_p99=slack[min(len(slack) - 1, int(0.99 * len(slack)))],
        mean_lag=mean([o.lag for o in outcomes]),
    )
