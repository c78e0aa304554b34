"""The live view writer's retention of state versions, with the catalog replaced by dicts: it deletes only
versions a restarted job can no longer read (older than the view it has just written), and keeps the newest."""

from __future__ import annotations

from typing import Any

import pytest

from lab import catalog
from lab.streaming import live_io
from lab.streaming.live_logic import state_doc_id
from lab.waiting import wait_for

SID = "live-0123456789"
KEPT = live_io.STATE_VERSIONS_KEPT


class FakeCatalog:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.views: dict[str, dict[str, Any]] = {}
        self.states = {state_doc_id(SID, v) for v in range(1, 101)}
        self.fail_views = False
        self.commands = 0
        self.attempts = 0  # view writes tried
        monkeypatch.setattr(live_io, "VIEW_INTERVAL_S", 0.0)
        monkeypatch.setattr(catalog, "collection", lambda name: self)
        monkeypatch.setattr(catalog, "bulk_write", self.bulk_write)

    def update_one(self, query: dict, update: dict, upsert: bool = False) -> None:
        self.attempts += 1
        if self.fail_views:
            raise ConnectionError("catalog down")
        self.views.setdefault(query["_id"], {}).update(update["$set"])

    def bulk_write(self, name: str, operations: list[Any]) -> None:
        assert name == catalog.LIVE_STATE
        self.commands += 1
        for op in operations:
            self.states.discard(op._filter["_id"])

    def versions(self) -> list[int]:
        return sorted(int(i.rsplit("/", 1)[1]) for i in self.states)


def show(writer: live_io.ViewWriter, fake: FakeCatalog, version: int) -> None:
    attempts = fake.attempts
    writer.submit(SID, {"state_version": version, "window_size": 3})
    wait_for(lambda: fake.attempts > attempts, "the view to be written", 5)
    writer.discard("someone-else")  # returns once the write in progress, and its prune, are done


def test_versions_older_than_the_newest_kept_are_deleted_once_the_view_points_past_them(monkeypatch):
    fake = FakeCatalog(monkeypatch)
    writer = live_io.ViewWriter()

    show(writer, fake, 80)
    # a process new to the stream looks back one command's worth, not to version 1
    start = 80 - KEPT - catalog.WRITE_BATCH
    assert fake.versions() == list(range(1, start + 1)) + list(range(80 - KEPT + 1, 101))
    show(writer, fake, 85)
    assert fake.versions() == list(range(1, start + 1)) + list(range(85 - KEPT + 1, 101))
    commands = fake.commands
    show(writer, fake, 85)  # nothing new to delete: no command
    assert fake.commands == commands


def test_nothing_is_deleted_when_the_view_was_not_written(monkeypatch):
    fake = FakeCatalog(monkeypatch)
    fake.fail_views = True
    writer = live_io.ViewWriter()
    show(writer, fake, 40)
    # a restarted job reads forward from the version the stored view shows: none may go before it moves
    assert fake.attempts == 1 and fake.versions() == list(range(1, 101))


def test_a_view_without_a_state_version_deletes_nothing(monkeypatch):
    fake = FakeCatalog(monkeypatch)
    writer = live_io.ViewWriter()
    writer.submit(SID, {"window_size": 3})
    wait_for(lambda: fake.attempts, "the view to be written", 5)
    writer.discard("someone-else")
    assert fake.commands == 0 and len(fake.states) == 100
