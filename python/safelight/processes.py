"""Process plumbing shared by every kind of server: a server spawned by a command must not
outlive it."""

from __future__ import annotations

import os
import time


def exit_when_orphaned(parent: int) -> None:
    """Stop when the process that started us is gone (no orphans from Cluster.local)."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)
