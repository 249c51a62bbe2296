"""``python -m flows.api_child PARENT_PID UVICORN_ARGS...``: uvicorn that dies with its parent.

Asks the kernel for SIGKILL when the thread that started this process ends
(``prctl(PR_SET_PDEATHSIG)``), exits at once if that parent is already gone, then runs uvicorn
with the remaining arguments. Used by :mod:`flows.temporary_api`.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when ``parent`` ends; exit now if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os._exit(0)


def main(argv: list[str]) -> None:
    """Guard this process, then hand the rest of ``argv`` to uvicorn."""
    die_with_parent(int(argv[0]))
    sys.argv = ["uvicorn", *argv[1:]]
    runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
