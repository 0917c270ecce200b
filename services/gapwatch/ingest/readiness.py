"""Whether a worker's counts can be trusted yet: the state behind its /readyz.

``starting`` until partitions are assigned; ``ready`` while it keeps up; ``rebuilding``
from the moment it notices Redis lost its state (or was rebuilt) until every assigned
partition has been replayed up to the high watermark seen when the replay began.
Pure bookkeeping: the worker feeds it offsets and watermarks and the clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Readiness", "State"]

State = Literal["starting", "ready", "rebuilding"]


@dataclass
class Readiness:
    state: State = "starting"
    partitions: frozenset[int] = frozenset()
    targets: dict[int, int] = field(default_factory=dict)
    """Partition -> offset to reach (the high watermark when the replay began)."""
    rebuilds: int = 0
    """Rebuilds completed since the worker started."""

    def assigned(self, positions: Mapping[int, int]) -> None:
        self.partitions = frozenset(positions)
        if self.state == "starting":
            self.state = "ready"

    def lost(self) -> None:
        """Redis no longer holds what this worker planned on: not ready until replayed."""
        self.state = "rebuilding"
        self.targets = {}

    def start_rebuild(self, positions: Mapping[int, int]) -> None:
        self.partitions = frozenset(positions)
        self.targets = {}
        self.state = "rebuilding" if self.partitions else "ready"

    def observe_highwaters(self, highwaters: Mapping[int, int], stored: Mapping[int, int]) -> None:
        """Fix each partition's target at the first watermark seen after the replay
        began; then check whether every partition has reached its target."""
        if self.state != "rebuilding":
            return
        for partition in self.partitions:
            if partition not in self.targets and partition in highwaters:
                self.targets[partition] = highwaters[partition]
        self.stored(stored)

    def stored(self, stored: Mapping[int, int]) -> None:
        if self.state != "rebuilding" or not self.partitions:
            return
        if self.partitions - set(self.targets):
            return
        if all(stored.get(p, 0) >= self.targets[p] for p in self.partitions):
            self.state = "ready"
            self.rebuilds += 1

    @property
    def ready(self) -> bool:
        return self.state == "ready"
