"""The chaos harness: faults injected into a real local stack while a seeded stream is
ingested, and every count in Redis compared with an independent in-process result.

Modules: ``stream`` (the seeded messages), ``oracle`` (expected counts), ``stack`` (one
scenario's processes), ``publishing`` (send until acknowledged), ``faults`` and ``run``
(what goes wrong, and waiting for recovery), ``readback`` and ``verify`` (what the topic
and Redis hold, and the mismatches), ``scenarios``, ``harness``, ``report``, ``cli``.
"""

from gapwatch.devstack.chaos.harness import Report, run_chaos
from gapwatch.devstack.chaos.scenarios import DEFAULT_SCENARIOS, SCENARIOS

__all__ = ["DEFAULT_SCENARIOS", "SCENARIOS", "Report", "run_chaos"]
