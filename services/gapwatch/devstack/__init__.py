"""The local stack for demos, tests and benchmarks: Tansu, Redis, topics, worker, API.

Used by ``scripts/stack``, ``make demo``, the integration tests and the benchmark, so all
of them start the parts the same way.
"""
