"""The publisher: trust-side producer library, ``gapwatch publish`` CLI, and seeded
synthetic scenarios for demos and benchmarks."""

from gapwatch.publisher.mix import DATASET_OF, DEFAULT_MIX, EVENT_TYPES, parse_mix
from gapwatch.publisher.producer import (
    PRODUCED_AT_HEADER,
    DeliveryStats,
    EncounterProducer,
    ProducerOptions,
    RefusedEvent,
)
from gapwatch.publisher.pseudonym import InvalidNhsNumber, Pseudonymiser
from gapwatch.publisher.scenario import Scenario, ScenarioConfig
from gapwatch.publisher.world import ScenarioData, build_scenario_data, load_scenario_data

__all__ = [
    "DATASET_OF",
    "DEFAULT_MIX",
    "EVENT_TYPES",
    "PRODUCED_AT_HEADER",
    "DeliveryStats",
    "EncounterProducer",
    "InvalidNhsNumber",
    "ProducerOptions",
    "Pseudonymiser",
    "RefusedEvent",
    "Scenario",
    "ScenarioConfig",
    "ScenarioData",
    "build_scenario_data",
    "load_scenario_data",
    "parse_mix",
]
