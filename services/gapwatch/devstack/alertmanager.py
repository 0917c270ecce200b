"""A throwaway Alertmanager for the integration tests and the local stack.

Runs Debian's ``prometheus-alertmanager`` binary directly (no systemd unit, no shared
state): its own free port on 127.0.0.1, a generated config, storage in a temporary
directory, and clustering off (``--cluster.listen-address=``), so several can run side
by side. The route groups by alertname, icb and indicator, as a real deployment would;
``group_wait`` is short by default so tests see notifications within seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from gapwatch.core.errors import ConfigError
from gapwatch.devstack.processes import StartupError, log_tail
from gapwatch.devstack.services import ManagedProcess, free_port

__all__ = [
    "GROUP_BY",
    "AlertmanagerHandle",
    "alertmanager_binary",
    "alertmanager_config",
    "start_alertmanager",
]

GROUP_BY = ("alertname", "icb", "indicator")
_BINARIES = ("prometheus-alertmanager", "alertmanager")  # Debian's name, upstream's name


def alertmanager_binary() -> Path:
    """``GAPWATCH_ALERTMANAGER_BIN``, else the Debian package's binary on PATH."""
    override = os.environ.get("GAPWATCH_ALERTMANAGER_BIN")
    if override:
        return Path(override)
    for name in _BINARIES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ConfigError(
        "no Alertmanager binary: apt-get install --no-install-recommends prometheus-alertmanager"
    )


def alertmanager_config(
    webhook_url: str | None = None,
    *,
    group_wait: str = "1s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> dict[str, Any]:
    """The config as data (JSON is YAML, so it is written as JSON). Without a webhook
    the route ends in a receiver with no integrations: alerts are kept, sent nowhere."""
    receiver: dict[str, Any] = {"name": "null"}
    if webhook_url:
        receiver = {
            "name": "webhook",
            "webhook_configs": [{"url": webhook_url, "send_resolved": True}],
        }
    return {
        "route": {
            "receiver": receiver["name"],
            "group_by": list(GROUP_BY),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [receiver],
    }


@dataclass
class AlertmanagerHandle:
    url: str
    """Base URL, e.g. ``http://127.0.0.1:40123`` (the API is under /api/v2)."""
    port: int
    workdir: Path
    process: ManagedProcess
    _tempdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def stop(self) -> None:
        """Stop the process and remove its directory if we created it; idempotent."""
        self.process.stop()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> AlertmanagerHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_alertmanager(
    *,
    port: int | None = None,
    webhook_url: str | None = None,
    workdir: Path | None = None,
    group_wait: str = "1s",
    group_interval: str = "1s",
    timeout_s: float = 30.0,
) -> AlertmanagerHandle:
    """Start Alertmanager on 127.0.0.1 and return once ``/-/ready`` answers 200.

    ``workdir`` (config, storage, log) defaults to a temporary directory removed by
    ``stop()``; pass the same ``port`` and ``workdir`` to start it again after a stop.
    """
    binary = alertmanager_binary()
    tempdir = None
    if workdir is None:
        tempdir = tempfile.TemporaryDirectory(prefix="gapwatch-alertmanager-")
        workdir = Path(tempdir.name)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    config = workdir / "alertmanager.yml"
    config.write_text(
        json.dumps(
            alertmanager_config(webhook_url, group_wait=group_wait, group_interval=group_interval),
            indent=2,
        )
    )
    (workdir / "data").mkdir(exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "alertmanager.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.external-url={url}",
                "--cluster.listen-address=",
                "--log.level=info",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    handle = AlertmanagerHandle(
        url, port, workdir, ManagedProcess("alertmanager", process, log_path), tempdir
    )
    try:
        _wait_ready(handle, timeout_s)
    except BaseException:
        handle.stop()
        raise
    return handle


def _wait_ready(handle: AlertmanagerHandle, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if handle.process.process.poll() is not None:
            raise StartupError(f"alertmanager exited during start-up:\n{log_tail(handle.process)}")
        try:
            with urllib.request.urlopen(f"{handle.url}/-/ready", timeout=1) as resp:  # noqa: S310 - our own http://127.0.0.1 URL
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise StartupError(
        f"alertmanager not ready after {timeout_s}s at {handle.url}:\n{log_tail(handle.process)}"
    )
