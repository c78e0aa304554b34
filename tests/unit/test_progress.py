"""`lab up` waits on progress, not on a clock (lab/stack/progress.py): real processes, short budgets."""

from __future__ import annotations

import sys

import pytest

from lab.stack import progress, supervisor
from lab.stack.supervisor import Service, StackError
from tests.unit.test_supervisor import free_port
from tests.unit.test_supervisor import state as state  # the fixture: state under tmp_path


def python(name: str, code: str, healthy) -> Service:
    return Service(name, free_port(), "test", lambda: [sys.executable, "-u", "-c", code], healthy)


def test_a_service_logging_its_warm_up_is_waited_for_past_its_budget(state):
    """Healthy only after 12 log lines (~3 s), with a 0.5 s budget and a 2.5 s stall limit: waited for."""
    ready = state / "ready"
    code = (f"import time, pathlib\nfor i in range(12):\n    print('warming up', i); time.sleep(0.25)\n"
            f"pathlib.Path({str(ready)!r}).touch()\ntime.sleep(60)")
    svc = python("unit-warm", code, ready.exists)
    supervisor.start(svc)
    took = progress.wait_healthy([svc], budget_s=0.5, stall_s=2.5, max_s=120)
    assert took["unit-warm"] > 0.5


def test_a_silent_idle_service_is_refused_naming_its_stage_and_every_time(state):
    fast = python("unit-fast", "import time; time.sleep(60)", lambda: True)
    idle = python("unit-idle", "print('listening soon', flush=True); import time; time.sleep(60)", lambda: False)
    supervisor.start(fast)
    supervisor.start(idle)
    with pytest.raises(StackError) as err:
        progress.wait_healthy([fast, idle], budget_s=0.5, stall_s=2.5, max_s=120)
    text = str(err.value)
    assert text.startswith("unit-idle: not healthy after ") and "no progress for " in text
    assert f"stage: port {idle.port} not open yet; last log line: listening soon" in text
    assert "start-up times: unit-fast " in text and "unit-idle " in text and "(not healthy)" in text


def test_the_cap_stops_even_a_busy_service(state):
    busy = python("unit-busy", "import itertools\nfor i in itertools.count():\n    print(i)", lambda: False)
    supervisor.start(busy)
    with pytest.raises(StackError, match=r"^unit-busy: not healthy after \d+s, the cap .* though still working"):
        progress.wait_healthy([busy], budget_s=0.5, stall_s=30, max_s=2)
