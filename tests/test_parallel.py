"""The suite runs in parallel (`pytest -n 2`, pytest-xdist): what its workers share must not collide.

Servers started by tests take their port from `tests.e2e.conftest.free_port`; two workers (or two
test runs) must never be handed the same one, or one server fails to start, or worse, a test talks
to the other worker's server.
"""

from __future__ import annotations

import os
import subprocess
import sys

from sentimentkit.config import REPO_ROOT
from tests.e2e.conftest import PORT_CLAIMS, free_port

DRAWS = 1000  # drawn by the kernel alone from ~28,000 ephemeral ports, 2 x 1000 would repeat dozens


def test_free_port_never_hands_out_one_port_twice_across_processes() -> None:
    code = (
        "import sys\n"
        "from tests.e2e.conftest import free_port\n"
        f"print(' '.join(str(free_port()) for _ in range({DRAWS})), flush=True)\n"
        "sys.stdin.read()\n"  # stays alive (its ports claimed) until the parent is done
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, text=True,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as child:  # fmt: skip
        assert child.stdout is not None and child.stdin is not None
        theirs = [int(p) for p in child.stdout.readline().split()]
        ours = [free_port() for _ in range(DRAWS)]
        child.stdin.close()
    assert len(theirs) == DRAWS and child.returncode == 0
    assert len(set(ours)) == DRAWS, "free_port gave this process one port twice"
    assert not set(ours) & set(theirs), "free_port gave two live processes the same port"
    # The child's claims went with it: a port is reserved only while its taker runs.
    assert not any((PORT_CLAIMS / str(port)).exists() for port in theirs)
