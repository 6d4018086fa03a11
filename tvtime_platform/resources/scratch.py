"""Private scratch folders on the local disk, and the sweep of those a killed process left behind.

A run killed with SIGKILL cannot remove its scratch (tens of MB of Parquet per day of events). Each
folder's name says which host and process made it (`tvtime-<host>-<pid>-<random>`), so the next
scratch folder made under the same parent removes the folders of processes of this host that no
longer exist, and never those of a live one.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = "tvtime-"


def _host() -> str:
    return "".join(c for c in socket.gethostname() if c.isalnum())[:32] or "host"


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs on this host (a zombie, which a killed child of a live parent becomes, does
    not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(") ", 1)[-1].startswith("Z"))


def sweep_dead(parent: Path) -> list[Path]:
    """Remove the scratch folders under `parent` whose process (on this host) has died; returns them."""
    removed = []
    own = f"{PREFIX}{_host()}-"
    for folder in parent.glob(f"{own}*"):
        pid = folder.name.removeprefix(own).split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextmanager
def scratch_folder(parent: str | None = None) -> Iterator[str]:
    """A private folder under `parent` (the system's temporary folder by default), removed afterwards; the leftovers of
    dead processes under the same parent are removed first."""
    base = Path(parent or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    sweep_dead(base)
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}{_host()}-{os.getpid()}-", dir=base) as folder:
        yield folder
