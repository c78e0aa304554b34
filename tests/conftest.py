"""Shared fixtures. Integration tests run against the isolated embedded stack `make test` starts."""

from __future__ import annotations

import pytest

from lab.config import settings


@pytest.fixture(scope="session")
def stack() -> None:
    """Fail (never skip) with a clear message when a service of the test stack is not healthy."""
    from lab import stack as lab_stack

    down = [s.name for s in lab_stack.status() if s.name in settings.services and not s.healthy]
    if down:
        pytest.fail(f"services not healthy: {', '.join(down)}; run `make test` (it starts the stack), "
                    f"or see `LAB_ENV_FILE=tests/stack.env lab status` and `lab logs SERVICE`", pytrace=False)
