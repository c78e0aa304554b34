"""The README's Security section lists every port of the embedded stack with its bind address: the list must
match the port plan (lab/stack/ports.py) with the defaults of the committed .env."""

from __future__ import annotations

import re

from lab.config import ROOT, Settings
from lab.stack import ports

ROW = re.compile(r"^\| `([a-z0-9.-]+)` \| (\d+) \| `([A-Z_]+)` \|")


def readme_ports() -> dict[str, tuple[int, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Security\n", 1)[1].split("\n## ", 1)[0]
    return {m[1]: (int(m[2]), m[3]) for line in section.splitlines() if (m := ROW.match(line))}


def test_the_readme_lists_every_planned_port_with_its_default():
    defaults = Settings(_env_file=(ROOT / ".env",))
    planned = {name: port for name, (_, port) in ports.plan(defaults).items()}
    listed = {name: port for name, (port, _) in readme_ports().items()}
    assert listed == planned


def test_every_listed_port_binds_lab_host_which_is_loopback_by_default():
    assert {bind for _, bind in readme_ports().values()} == {"LAB_HOST"}
    assert Settings(_env_file=(ROOT / ".env",)).lab_host == "127.0.0.1"
