"""Stack health: every service of the lab as a live table, and the UI map (where to click).

Embedded mode reads `lab.stack.status()` (pid, port, health probe, memory of each local process); in the
container stack the processes are not ours, so each service's health probe is asked directly.
"""

from __future__ import annotations

import pandas as pd

from lab.config import settings
from lab.widgets._base import HTMLDisplay, LabWidget, dot, esc, fmt_bytes, html_table


def health_frame() -> pd.DataFrame:
    """One row per service: name, healthy, state, pid, port, memory, purpose."""
    from lab import stack
    from lab.stack import supervisor
    from lab.stack.services import all_services

    rows = []
    if settings.lab_mode == "embedded":
        for s in stack.status():
            state = "healthy" if s.healthy else ("UNHEALTHY" if s.pid else "stopped")
            rows.append({"service": s.name, "healthy": s.healthy, "state": state, "pid": s.pid, "port": s.port,
                         "memory": s.rss_bytes if s.pid else None, "purpose": s.purpose,
                         "wanted": s.name in settings.services})
    else:
        for svc in all_services().values():
            ok = supervisor.safe_healthy(svc)
            rows.append({"service": svc.name, "healthy": ok, "state": "healthy" if ok else "not answering",
                         "pid": None, "port": svc.port, "memory": None, "purpose": svc.purpose,
                         "wanted": svc.name in settings.services})
    return pd.DataFrame(rows)


def ui_map_frame() -> pd.DataFrame:
    from lab import stack

    return pd.DataFrame(stack.ui_map(), columns=["service", "url", "credentials", "purpose"])


def ui_map_html() -> str:
    rows = [(esc(name), f'<a href="{esc(url)}" target="_blank">{esc(url)}</a>' if url.startswith("http") else
             f"<code>{esc(url)}</code>", esc(cred), esc(purpose))  # only web pages are links
            for name, url, cred, purpose in ui_map_frame().itertuples(index=False)]
    return html_table(["service", "URL", "credentials", "what for"], rows, raw=(0, 1, 2, 3))


def ui_map() -> HTMLDisplay:
    """The UI map as a table of links (a static display: it does not change while the stack runs)."""
    return HTMLDisplay(ui_map_html(), "UI map (table of links)")


class StackHealth(LabWidget):
    """Health of every service, refreshed every `interval` seconds while "live" is on."""

    title = "Stack health"

    def __init__(self, *, interval: float = 5.0, auto: bool = True, show_ui_map: bool = True):
        self.show_ui_map = show_ui_map
        self.frame = pd.DataFrame()
        super().__init__(interval=interval, auto=auto)

    def render(self) -> str:
        frame = health_frame()
        self.frame = frame
        rows = []
        for r in frame.itertuples(index=False):
            running = not pd.isna(r.pid)  # pid is NaN, which is truthy, for a service that is not running
            ok = True if r.healthy else (False if r.wanted or running else None)
            state = r.state if r.wanted or running else "not in LAB_SERVICES"
            rows.append((r.service, dot(ok, state), r.port, int(r.pid) if running else "",
                         fmt_bytes(None if pd.isna(r.memory) else r.memory), r.purpose))
        wanted = frame[frame["wanted"]]
        healthy = int(wanted["healthy"].sum())
        summary = (f"<p>{healthy} of the {len(wanted)} services this stack runs (LAB_SERVICES) are healthy; "
                   f"state dir <code>{esc(settings.lab_state_dir)}</code></p>")
        table = html_table(["service", "state", "port", "pid", "memory", "what it does"], rows, raw=(1,),
                           numeric=(2, 3, 4))
        extra = f"<p><b>UI map</b></p>{ui_map_html()}" if self.show_ui_map else ""
        return summary + table + extra
