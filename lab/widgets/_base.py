"""What every widget shares: a header with a refresh button, optional auto-refresh from a background thread,
and errors shown as one short red line, never a traceback.

A widget's `render()` returns HTML; `refresh()` calls it and puts the result in the body. Auto-refresh runs
`refresh()` every `interval` seconds in a daemon thread that stops when the widget is closed, when the
"live" toggle is switched off, or after `max_lifetime_s` (a forgotten notebook tab does not poll forever).
The thread only ever sets widget values: it never prints, so nothing it does lands in another cell's output.

Locking: a traitlets observer runs synchronously in the thread that set the trait. So when `render()` (inside
the refresh lock) changes a control, that control's observers run right there, inside the lock. Two rules keep
that from deadlocking: controls that `render()` changes are set through `set_options`/`quiet_controls`, whose
changes do not call `refresh()` (`on_change` observers ignore them); and a `refresh()` re-entered from the
thread that is already refreshing returns at once instead of waiting on its own lock. A refresh from another
thread waits at most `lock_timeout_s`, then says the widget is busy.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import ipywidgets as widgets

ERROR_COLOR = "#b00020"
OK_COLOR = "#1b7f3b"
MUTED = "#777"

TABLE_CSS = (
    "<style>"
    ".labw table{border-collapse:collapse;font:12px/1.35 system-ui,sans-serif;margin:2px 0}"
    ".labw th{background:#f3f4f6;text-align:left;padding:3px 8px;border-bottom:1px solid #ccc}"
    ".labw td{padding:2px 8px;border-bottom:1px solid #eee;vertical-align:top}"
    ".labw td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".labw pre{font:12px/1.35 ui-monospace,monospace;margin:2px 0;white-space:pre-wrap}"
    ".labw details summary{cursor:pointer}"
    "</style>"
)


def short_error(exc: BaseException | str, limit: int = 220) -> str:
    """One line a learner can act on: the exception's type and the first line of its message."""
    if isinstance(exc, str):
        text = exc
    else:
        first = (str(exc).strip().splitlines() or [""])[0]
        text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        hint = _hint(exc)
        if hint:
            text = f"{text} ({hint})"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _hint(exc: BaseException) -> str | None:
    name = type(exc).__name__
    if name in ("ConnectError", "ConnectionRefusedError", "ServerSelectionTimeoutError", "EndpointConnectionError"):
        return "is the stack running? try `lab status`"
    return None


def error_html(exc: BaseException | str) -> str:
    return f'<span style="color:{ERROR_COLOR}">⚠ {html.escape(short_error(exc))}</span>'


def muted_html(text: str) -> str:
    return f'<span style="color:{MUTED}">{html.escape(text)}</span>'


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_time(value: Any) -> str:
    """A datetime or epoch milliseconds as HH:MM:SS.mmm (UTC); anything else as text."""
    if isinstance(value, (int, float)) and value > 1e12:
        value = datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]
    return "" if value is None else str(value)


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, raw: Iterable[int] = (),
               numeric: Iterable[int] = ()) -> str:
    """A small HTML table; columns in `raw` are trusted HTML, the others are escaped."""
    raw, numeric = set(raw), set(numeric)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            cls = ' class="num"' if i in numeric else ""
            cells.append(f"<td{cls}>{value if i in raw else esc(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def nullable_ints(frame: Any, columns: Iterable[str]) -> Any:
    """Integer columns that may hold a missing value as pandas' nullable Int64: `0`, not `0.0`, beside `<NA>`.
    (A column of ints with one None becomes float64 in pandas.) A column that holds fractions is left alone."""
    for column in columns:
        if column in frame:
            try:
                frame[column] = frame[column].astype("Int64")
            except (TypeError, ValueError):
                pass
    return frame


def dot(ok: bool | None, label: str) -> str:
    color = {True: OK_COLOR, False: ERROR_COLOR, None: MUTED}[ok]
    return f'<span style="color:{color}">●</span> {esc(label)}'


class LabWidget(widgets.VBox):
    """Header (title, controls, refresh, live toggle, status) over an HTML body filled by `render()`."""

    title = "widget"
    lock_timeout_s = 60.0

    def __init__(self, *, controls: Sequence[widgets.Widget] = (), interval: float | None = None,
                 auto: bool = False, max_lifetime_s: float = 1800.0, refresh_now: bool = True):
        self._lock = threading.Lock()
        self._local = threading.local()  # per thread: `refreshing` (inside refresh) and `quiet` (render sets controls)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.interval = interval
        self.max_lifetime_s = max_lifetime_s
        self._heading = widgets.HTML(f"<b>{esc(self.title)}</b>")
        self._status = widgets.HTML()
        self._button = widgets.Button(description="refresh", icon="refresh", tooltip="refresh now",
                                      layout=widgets.Layout(width="90px"))
        self._button.on_click(lambda _: self.refresh())
        header: list[widgets.Widget] = [self._heading, *controls, self._button]
        self._live: widgets.ToggleButton | None = None
        if interval:
            self._live = widgets.ToggleButton(value=False, description="live", icon="play",
                                              tooltip=f"refresh every {interval:g} s",
                                              layout=widgets.Layout(width="80px"))
            self._live.observe(self._on_live, names="value")
            header.append(self._live)
        header.append(self._status)
        self.body = widgets.HTML()
        super().__init__([widgets.HBox(header, layout=widgets.Layout(align_items="center", flex_flow="row wrap")),
                          self.body])
        self.add_class("labw")
        if refresh_now:
            self.refresh()
        if auto and interval:
            self.start()

    # --- what subclasses write ------------------------------------------------------------------
    def render(self) -> str:
        raise NotImplementedError

    # --- controls -------------------------------------------------------------------------------
    def on_change(self, control: widgets.Widget, names: str = "value") -> None:
        """Refresh when the learner changes `control`; a change made by `render()` itself does not."""
        control.observe(self._control_changed, names=names)

    def _control_changed(self, _change: dict) -> None:
        if not getattr(self._local, "quiet", False):
            self.refresh()

    @contextmanager
    def quiet_controls(self) -> Iterator[None]:
        """Set controls in this block without their `on_change` observers refreshing (render() uses it)."""
        before = getattr(self._local, "quiet", False)
        self._local.quiet = True
        try:
            yield
        finally:
            self._local.quiet = before

    def set_options(self, select: widgets.Dropdown, options: Sequence[Any], value: Any) -> None:
        """New options for a dropdown that keep `value` selected. Not under hold_trait_notifications: the
        dropdown's own options observer would then run last and select the first option (ipywidgets 8)."""
        with self.quiet_controls():
            if tuple(select.options) != tuple(options):
                select.options = list(options)
            if select.value != value:
                select.value = value

    # --- refreshing -------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Render into the body; on any error keep the last body and show one red line. Returns success."""
        if getattr(self._local, "refreshing", False):
            return True  # re-entered from this thread's own render(): never wait on our own lock
        if not self._lock.acquire(timeout=self.lock_timeout_s):
            self._status.value = muted_html("busy: the last refresh is still running; try again")
            return False
        self._local.refreshing = True
        try:
            return self._refresh_locked()
        finally:
            self._local.refreshing = False
            self._lock.release()

    def _refresh_locked(self) -> bool:
        try:
            content = self.render()
        except Exception as exc:  # a widget never raises into the notebook
            self._status.value = error_html(exc)
            return False
        body = TABLE_CSS + content
        unchanged = body == self.body.value
        self.body.value = body
        self._status.value = muted_html(f"updated {datetime.now().strftime('%H:%M:%S')}")
        if unchanged and threading.current_thread() is threading.main_thread():
            # A refresh asked for in a cell re-sends the body even when the background thread already
            # set it: that thread's messages belong to the cell that started it, and a notebook run
            # headless (nbclient, nbval) keeps only each cell's own, so the saved widget would be stale.
            self.body.send_state("value")
        return True

    def start(self) -> None:
        if self._live is not None and not self._live.value:
            self._live.value = True  # _on_live starts the thread
            return
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"{type(self).__name__}-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._live is not None and self._live.value:
            self._live.value = False

    def _on_live(self, change: dict) -> None:
        if change["new"]:
            self._live.icon = "pause"
            self.start()
        else:
            self._live.icon = "play"
            self._stop.set()

    def _loop(self) -> None:
        deadline = time.monotonic() + self.max_lifetime_s
        while not self._stop.wait(self.interval or 5.0):
            if time.monotonic() > deadline:
                self._status.value = muted_html("live refresh stopped after "
                                                f"{self.max_lifetime_s / 60:.0f} min; press live again")
                if self._live is not None:
                    self._live.value = False
                return
            self.refresh()
            self.on_tick()

    def on_tick(self) -> None:
        """Called after each automatic refresh (a subclass may stop itself, e.g. once a stream ended)."""

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def close(self) -> None:
        self._stop.set()
        super().close()

    def __repr__(self) -> str:  # the text/plain nbval compares: stable, unlike the widget's values
        return f"{self.title} (widget)"


class HTMLDisplay:
    """A plain display object: HTML for the notebook, a stable one-line text for nbval and terminals."""

    def __init__(self, html_text: str, text: str):
        self.html_text, self.text = html_text, text

    def _repr_html_(self) -> str:
        return f'<div class="labw">{TABLE_CSS}{self.html_text}</div>'

    def __repr__(self) -> str:
        return self.text


def error(message: BaseException | str) -> HTMLDisplay:
    """A short red message, for a cell that cannot show what it meant to."""
    return HTMLDisplay(error_html(message), f"error: {short_error(message)}")
