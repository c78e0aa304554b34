"""Widget refreshes never deadlock: a control changed by render() must not make refresh() wait on itself.

The bug these reproduce (lesson 04 hung with the producer on): a background refresh holds the widget's lock,
render() replaces a dropdown's options, ipywidgets selects the first option, the value observer calls
refresh() on the same thread, and refresh() waits forever for the lock that thread holds. Every call runs in
a daemon thread joined with a timeout, so a deadlock fails the test instead of hanging the suite.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import pandas as pd
import pytest

from lab.widgets import _base, catalog
from lab.widgets._base import LabWidget

DEADLOCK_S = 10.0  # generous: each refresh here is pure Python and takes microseconds


def in_thread(call: Callable[[], Any], what: str) -> Any:
    """Run `call` in a background thread, as the widget's auto-refresh does; fail if it does not return."""
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(value=call()), name="test-refresh", daemon=True)
    thread.start()
    thread.join(DEADLOCK_S)
    assert not thread.is_alive(), f"{what} never returned: the widget deadlocked on its own lock"
    return result.get("value")


class OptionsChangingWidget(LabWidget):
    """A widget whose render() replaces the options of a dropdown whose observer refreshes the widget."""

    title = "options change on every render"

    def __init__(self) -> None:
        self.select = widgets.Dropdown(options=["a"], value="a")
        self.renders = 0
        super().__init__(controls=[self.select], refresh_now=False)
        self.select.observe(lambda _: self.refresh(), names="value")  # the plain wiring a widget may use

    def render(self) -> str:
        self.renders += 1
        self.select.options = [f"new-{self.renders}", "a"]  # ipywidgets selects "new-N": the observer fires
        return f"render {self.renders}"


def test_background_refresh_that_changes_options_returns() -> None:
    widget = OptionsChangingWidget()
    assert in_thread(widget.refresh, "a background refresh") is True
    assert in_thread(widget.refresh, "the next refresh (the lesson cell's own)") is True
    assert widget.body.value.endswith("render 2")


@pytest.fixture
def fake_catalog(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """CatalogBrowser without a catalog: the newest-streams listing is whatever the test puts in `state`."""
    state = {"ids": ["vod-aaaaaaaaaaaa"]}
    monkeypatch.setattr(catalog, "streams_frame", lambda _collection, limit=20: pd.DataFrame(
        {"stream_id": list(state["ids"]), "status": "ready"}))
    monkeypatch.setattr(catalog, "stream_document", lambda stream_id: {"stream_id": stream_id, "status": "ready"})
    monkeypatch.setattr(catalog, "chunks_frame", lambda _stream_id, limit=None: pd.DataFrame())
    return state


def test_catalog_browser_survives_a_new_stream_during_background_refresh(fake_catalog: dict) -> None:
    shown = "vod-aaaaaaaaaaaa"
    browser = catalog.CatalogBrowser(shown)
    fake_catalog["ids"] = ["vod-bbbbbbbbbbbb", shown]  # the producer uploaded a newer stream meanwhile
    assert in_thread(browser.refresh, "a background refresh of the catalog browser") is True
    assert in_thread(browser.refresh, "the lesson cell's own browser.refresh()") is True
    assert list(browser.stream_select.options) == ["vod-bbbbbbbbbbbb", shown]
    assert browser.stream_select.value == shown, "the dropdown jumped to another stream than the one shown"
    assert shown in browser.body.value


def test_catalog_browser_follows_a_stream_the_learner_picks(fake_catalog: dict) -> None:
    fake_catalog["ids"] = ["vod-bbbbbbbbbbbb", "vod-aaaaaaaaaaaa"]
    browser = catalog.CatalogBrowser()
    browser.stream_select.value = "vod-aaaaaaaaaaaa"  # a learner's pick refreshes the widget
    assert "vod-aaaaaaaaaaaa" in browser.body.value


def test_a_refresh_from_another_thread_gives_up_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    widget = OptionsChangingWidget()
    monkeypatch.setattr(widget, "lock_timeout_s", 0.1)
    widget._lock.acquire()  # a refresh in another thread that never ends (a hung S3 call, say)
    try:
        assert in_thread(widget.refresh, "a refresh while another is stuck") is False
        assert "busy" in widget._status.value
    finally:
        widget._lock.release()


def test_render_errors_become_one_line() -> None:
    class Broken(LabWidget):
        title = "broken"

        def render(self) -> str:
            raise ConnectionRefusedError("[Errno 111] Connection refused")

    widget = Broken()
    assert widget.refresh() is False
    assert "ConnectionRefusedError" in widget._status.value and "lab status" in widget._status.value
    assert _base.short_error(ValueError("a\nb")) == "ValueError: a"
