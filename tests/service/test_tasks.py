"""The service's task queue: lanes, order, concurrency, and one meaning of "cancelled" for jobs and evaluations."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ragkit.errors import ConflictError, NotFoundError
from ragkit.ingest import IngestReport
from ragkit.service.evaluations import LANE, Evaluation
from ragkit.service.jobs import Job, JobManager, ingest_lane
from ragkit.service.tasks import Task, TaskQueue

WAIT = 30  # seconds an event may take before the test fails (never a timing assertion)


@pytest.fixture
def queue() -> Iterator[TaskQueue]:
    tasks = TaskQueue({"job": 10, "evaluation": 10})
    yield tasks
    tasks.close(timeout=WAIT)


def wait_finished(task: Task) -> Task:
    ended = threading.Event()

    def poll() -> None:
        while not task.finished:
            ended.wait(0.01)
        ended.set()

    threading.Thread(target=poll, daemon=True).start()
    assert ended.wait(WAIT), f"{task.family} {task.id} did not finish: {task.status}"
    return task


def evaluation(tmp_path: Path, number: int) -> Evaluation:
    return Evaluation(id=f"eval_{number:032x}", suite="s.yaml", suite_name="s", folder=tmp_path / str(number))


def job(collection: str, number: int) -> Job:
    return Job(id=f"job_{number}", lane=ingest_lane(collection), collection=collection, kind="path", sources=[])


class Gate:
    """Work that records when it starts and waits until the test opens the gate."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.open = threading.Event()

    def work(self, log: list[str] | None = None, name: str = "") -> Callable[[Task], None]:
        def run(task: Task) -> None:
            if log is not None:
                log.append(name)
            self.started.set()
            assert self.open.wait(WAIT)

        return run


def test_one_collection_ingests_in_order_while_other_lanes_run_beside_it(queue: TaskQueue, tmp_path: Path) -> None:
    order: list[str] = []
    first = Gate()
    queue.submit(job("docs", 1), first.work(order, "docs-1"))
    assert first.started.wait(WAIT)
    later = [queue.submit(job("docs", n), lambda task, n=n: order.append(f"docs-{n}")) for n in (2, 3, 4)]
    assert [task.status for task in later] == ["queued"] * 3, "a collection runs one ingest at a time"

    # while docs-1 holds its lane, another collection and an evaluation run to the end
    other = Gate()
    run = Gate()
    beside = queue.submit(job("other", 5), other.work())
    scoring = queue.submit(evaluation(tmp_path, 6), run.work())
    assert other.started.wait(WAIT) and run.started.wait(WAIT)
    assert beside.status == "running" and scoring.status == "running"
    other.open.set()
    run.open.set()
    assert wait_finished(beside).status == "succeeded" and wait_finished(scoring).status == "succeeded"
    assert [task.status for task in later] == ["queued"] * 3

    first.open.set()
    for task in later:
        assert wait_finished(task).status == "succeeded"
    assert order == ["docs-1", "docs-2", "docs-3", "docs-4"]
    assert [task.id for task in queue.tasks(ingest_lane("docs"))] == ["job_1", "job_2", "job_3", "job_4"]


def test_evaluations_share_one_lane(queue: TaskQueue, tmp_path: Path) -> None:
    gate = Gate()
    first = queue.submit(evaluation(tmp_path, 1), gate.work())
    second = queue.submit(evaluation(tmp_path, 2), lambda task: None)
    assert gate.started.wait(WAIT)
    assert first.lane == second.lane == LANE and second.status == "queued"
    gate.open.set()
    assert wait_finished(second).status == "succeeded"


@pytest.mark.parametrize("kind", ["job", "evaluation"])
def test_cancel_means_the_same_for_jobs_and_evaluations(queue: TaskQueue, tmp_path: Path, kind: str) -> None:
    def make(number: int) -> Task:
        return job("docs", number) if kind == "job" else evaluation(tmp_path, number)

    steps: list[int] = []
    gate = Gate()
    ended: list[str] = []

    def stepwise(task: Task) -> None:
        gate.started.set()
        for step in range(1000):
            task.checkpoint()
            steps.append(step)
            if step == 0:
                assert gate.open.wait(WAIT)

    running = queue.submit(make(1), stepwise, on_finish=lambda task: ended.append(task.id))
    assert gate.started.wait(WAIT)
    never_ran: list[Task] = []
    queued = queue.submit(make(2), never_ran.append, on_finish=lambda task: ended.append(task.id))

    # a queued task is cancelled at once and never starts
    assert queue.cancel(queued) is queued
    assert queued.status == "cancelled" and queued.started_at is None and queued.finished_at is not None
    assert queued.error == {"type": "Cancelled", "message": "cancelled before it started"}

    # a running one stops at its next checkpoint; what it did before stays done
    queue.cancel(running)
    assert running.status == "running", "nothing is interrupted outside a checkpoint"
    gate.open.set()
    assert wait_finished(running).status == "cancelled"
    assert running.error == {"type": "Cancelled", "message": "cancelled while running"}
    assert steps == [0]

    # once over, a cancel is a conflict, and the status stays
    with pytest.raises(ConflictError, match=f"{running.family} {running.id} has already cancelled"):
        queue.cancel(running)
    assert never_ran == [] and sorted(ended) == sorted([running.id, queued.id])
    assert [task.status for task in queue.tasks()] == ["cancelled", "cancelled"]


def test_a_cancel_after_the_last_checkpoint_changes_nothing(queue: TaskQueue) -> None:
    gate = Gate()
    task = queue.submit(job("docs", 1), gate.work())
    assert gate.started.wait(WAIT)
    queue.cancel(task)
    gate.open.set()
    assert wait_finished(task).status == "succeeded" and task.error is None


def test_failures_keep_their_type_and_message(queue: TaskQueue) -> None:
    def broken(task: Task) -> None:
        raise NotFoundError("collection 'docs' does not exist")

    failed = wait_finished(queue.submit(job("docs", 1), broken))
    assert failed.status == "failed"
    assert failed.error == {"type": "NotFoundError", "message": "collection 'docs' does not exist"}


def test_deleting_a_collection_cancels_its_queued_jobs_and_cleans_up(queue: TaskQueue) -> None:
    jobs = JobManager(queue)
    gate = Gate()
    cleaned: list[str] = []
    reports: list[str] = []

    def ingest(job: Job) -> IngestReport:
        reports.append(job.id)
        gate.started.set()
        assert gate.open.wait(WAIT)
        return IngestReport()

    running = jobs.submit("docs", "path", ["/a"], ingest, cleanup=lambda: cleaned.append("running"))
    assert gate.started.wait(WAIT)
    waiting = jobs.submit("docs", "upload", ["b.md"], ingest, cleanup=lambda: cleaned.append("waiting"))
    elsewhere = jobs.submit("other", "path", ["/c"], lambda job: IngestReport())
    delete = jobs.run_exclusive("docs", lambda: "deleted")

    assert jobs.cancel_queued("docs", "collection 'docs' was deleted") == 1
    assert waiting.status == "cancelled" and cleaned == ["waiting"]
    assert waiting.to_dict()["error"] == {"type": "Cancelled", "message": "collection 'docs' was deleted"}
    gate.open.set()
    assert delete.result(WAIT) == "deleted", "the delete runs after the ingest that was already running"
    assert running.status == "succeeded" and running.to_dict()["counts"]["added"] == 0
    assert wait_finished(elsewhere).status == "succeeded"
    assert reports == [running.id] and cleaned == ["waiting", "running"]
    assert jobs.get(waiting.id) is waiting
    with pytest.raises(NotFoundError, match="no job 'job_nope'"):
        jobs.get("job_nope")


def test_closing_cancels_what_is_queued_and_stops_what_runs(tmp_path: Path) -> None:
    queue = TaskQueue()
    gate = Gate()

    def stepwise(task: Task) -> None:
        gate.started.set()
        assert gate.open.wait(WAIT)
        task.checkpoint()

    running = queue.submit(evaluation(tmp_path, 1), stepwise)
    assert gate.started.wait(WAIT)
    queued = queue.submit(evaluation(tmp_path, 2), stepwise)
    closing = threading.Thread(target=queue.close, kwargs={"timeout": WAIT})
    closing.start()
    assert wait_finished(queued).status == "cancelled"
    gate.open.set()
    closing.join(WAIT)
    assert running.status == "cancelled" and running.error == {"type": "Cancelled", "message": "the service shut down"}
    assert queued.error == {"type": "Cancelled", "message": "the service shut down"}
    with pytest.raises(RuntimeError, match="shut down"):
        queue.submit(evaluation(tmp_path, 3), stepwise)


def test_only_the_latest_finished_tasks_of_each_family_are_kept(tmp_path: Path) -> None:
    queue = TaskQueue({"job": 2, "evaluation": 1})
    for number in range(4):
        wait_finished(queue.submit(job("docs", number), lambda task: None))
        wait_finished(queue.submit(evaluation(tmp_path, number), lambda task: None))
    queue.submit(job("docs", 9), lambda task: None)
    queue.submit(evaluation(tmp_path, 9), lambda task: None)
    queue.close(timeout=WAIT)
    kept = [task.id for task in queue.tasks()]
    assert [i for i in kept if i.startswith("job_")] == ["job_2", "job_3", "job_9"]
    assert [i for i in kept if i.startswith("eval_")] == [f"eval_{3:032x}", f"eval_{9:032x}"]
