"""Prefect's temporary API server, tied to the life of the process that starts it.

Without ``PREFECT_API_URL``, Prefect starts a temporary API server (``SubprocessASGIServer``: a
``python -m uvicorn`` child) on first use and stops it from an ``atexit`` handler, which never
runs when the parent is killed (SIGKILL, the OOM killer): the server, about 220 MB, would keep
running, re-parented to init. :func:`start_temporary_api` starts that server itself, from the
calling (main) thread, through :mod:`flows.api_child`, which asks the kernel
(``PR_SET_PDEATHSIG``) to kill the server as soon as the thread that started it ends. Prefect
keeps one server per port in ``SubprocessASGIServer._instances``; the server made here takes the
default slot, so every later use in this process gets it and Prefect's own ``atexit`` stop still
ends it in an orderly way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

import prefect
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL, get_current_settings


class GuardedServer(SubprocessASGIServer):
    """Prefect's temporary server, started so that it dies with the thread that started it."""

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        # the command and environment of Prefect 3.8 and 3.9's SubprocessASGIServer, run through
        # the guard in flows.api_child
        server_env = {
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        return subprocess.Popen(
            args=[
                sys.executable,
                "-m",
                "flows.api_child",
                str(os.getpid()),
                "--app-dir",
                str(prefect.__module_path__.parent),
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env={
                **os.environ,
                **server_env,
                **get_current_settings().to_environment_variables(exclude_unset=True),
            },
        )


def needs_temporary_api() -> bool:
    """Whether Prefect would start a temporary API server in this process (no API URL set).

    Prefect's ``get_client`` (3.8 and 3.9) tests the setting object
    ``PREFECT_SERVER_EPHEMERAL_ENABLED``, not its value, so it starts one whenever no API URL is
    set.
    """
    return not PREFECT_API_URL.value()


def start_temporary_api() -> str | None:
    """Start Prefect's temporary API server now, from this thread, guarded; return its URL.

    Does nothing (returns None) when an API URL is configured. Call it from the main thread:
    the kernel ends the server when the starting thread ends.
    """
    if not needs_temporary_api():
        return None
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("start the temporary Prefect API from the main thread")
    existing = SubprocessASGIServer._instances.get(None)
    server = existing if existing is not None else GuardedServer()
    server.start()
    return server.api_url
