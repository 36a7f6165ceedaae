"""A paused agent state resumes once: a replayed state never runs an approved call again."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ragkit.agents import Agent, tool
from ragkit.agents.ledger import MemoryLedger, SqliteLedger
from ragkit.agents.scripted import ScriptedGenerator
from ragkit.errors import ConflictError


def wiping_agent(ran: list[str], **options: object) -> tuple[Agent, ScriptedGenerator]:
    @tool(requires_approval=True)
    def wipe(target: str) -> str:
        """Wipe a target."""
        ran.append(target)
        return "wiped"

    generator = ScriptedGenerator(['Action: wipe\nAction Input: "cache"'], then="Final Answer: Wiped.")
    return Agent(generator=generator, tools=[wipe], secret="k", **options), generator  # type: ignore[arg-type]


def test_a_state_resumed_twice_runs_the_approved_call_once() -> None:
    ran: list[str] = []
    agent, _ = wiping_agent(ran)
    agent.ledger = MemoryLedger()
    paused = agent.run("Wipe the cache.")
    decision = {paused.pending[0].id: "approve"}
    assert agent.resume(paused.state or "", decision).answer == "Wiped."
    with pytest.raises(ConflictError, match="resumed already"):
        agent.resume(paused.state or "", decision)
    assert ran == ["cache"]


def test_a_refused_resume_leaves_the_state_usable() -> None:
    ran: list[str] = []
    agent, _ = wiping_agent(ran)
    agent.ledger = MemoryLedger()
    paused = agent.run("Wipe the cache.")
    with pytest.raises(Exception, match="no decision"):
        agent.resume(paused.state or "", {})
    assert agent.resume(paused.state or "", {paused.pending[0].id: "deny"}).status == "completed"
    assert ran == []


def test_two_threads_resuming_one_state_run_the_call_once(tmp_path: Path) -> None:
    ran: list[str] = []
    agent, _ = wiping_agent(ran)
    paused = agent.run("Wipe the cache.")
    decision = {paused.pending[0].id: "approve"}
    ledger_file = tmp_path / "resumes.sqlite"
    outcomes: list[str] = []

    def resume_in_another_worker() -> None:
        worker, _ = wiping_agent(ran)  # another process's agent: same recipe, same secret, the same ledger file
        worker.ledger = SqliteLedger(ledger_file)
        try:
            worker.resume(paused.state or "", decision)
            outcomes.append("resumed")
        except ConflictError:
            outcomes.append("refused")

    threads = [threading.Thread(target=resume_in_another_worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "refused", "refused", "resumed"]
    assert ran == ["cache"]


def test_the_sqlite_ledger_is_shared_by_every_instance_over_one_file(tmp_path: Path) -> None:
    first, second = SqliteLedger(tmp_path / "l.sqlite"), SqliteLedger(tmp_path / "l.sqlite")
    assert first.claim("n1", 4e9) is True
    assert second.claim("n1", 4e9) is False
    assert second.claim("n2", 4e9) is True
    assert first.claim("old", 1.0) is True  # expired records are purged at the next claim ...
    assert second.claim("old", 4e9) is True  # ... (a state that old is refused as expired before this)


def test_workers_opening_a_new_ledger_at_once_never_fail(tmp_path: Path) -> None:
    """Service workers start together: each opens the ledger file, one of them creating it (with WAL this failed
    with "database is locked" about one time in five)."""

    def open_and_claim(path: Path, results: list[object]) -> None:
        try:
            results.append(SqliteLedger(path).claim("nonce", 4e9))
        except Exception as exc:  # recorded, so the assertion shows it
            results.append(exc)

    for attempt in range(50):
        results: list[object] = []
        path = tmp_path / f"ledger-{attempt}.sqlite"
        threads = [threading.Thread(target=open_and_claim, args=(path, results)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(map(repr, results)) == ["False", "False", "False", "True"], results
