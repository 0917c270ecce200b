"""Adapters at the edge: Kafka, Avro, Redis, reference-data files, metrics."""
