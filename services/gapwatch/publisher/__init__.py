"""The publisher: trust-side producer library, ``gapwatch publish`` CLI, and seeded
synthetic scenarios for demos and benchmarks."""

from gapwatch.publisher.producer import (
    PRODUCED_AT_HEADER,
    DeliveryStats,
    EncounterProducer,
    ProducerOptions,
)
from gapwatch.publisher.scenario import (
    DATASET_OF,
    DEFAULT_MIX,
    EVENT_TYPES,
    Scenario,
    ScenarioConfig,
    ScenarioData,
    build_scenario_data,
    load_scenario_data,
    parse_mix,
)

__all__ = [
    "DATASET_OF",
    "DEFAULT_MIX",
    "EVENT_TYPES",
    "PRODUCED_AT_HEADER",
    "DeliveryStats",
    "EncounterProducer",
    "ProducerOptions",
    "Scenario",
    "ScenarioConfig",
    "ScenarioData",
    "build_scenario_data",
    "load_scenario_data",
    "parse_mix",
]
