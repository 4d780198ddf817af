"""Prometheus metrics of the ingest process (served with ``edgeplane ingest --metrics-port``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_RECEIVED = Counter(
    "edgeplane_ingest_messages_received_total", "MQTT messages received.", ["channel"]
)
EVENTS_STORED = Counter(
    "edgeplane_ingest_events_stored_total", "Events stored for the first time.", ["channel"]
)
DUPLICATES = Counter(
    "edgeplane_ingest_duplicates_total",
    "Events received again after they were stored (redeliveries); confirmed again.",
    ["channel"],
)
DEAD_LETTERS = Counter(
    "edgeplane_ingest_dead_letters_total", "Messages refused and dead-lettered.", ["reason"]
)
BATCH_MESSAGES = Histogram(
    "edgeplane_ingest_batch_messages",
    "Messages written per database transaction.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
)
BATCH_EVENTS = Histogram(
    "edgeplane_ingest_batch_events",
    "Events written per database transaction.",
    buckets=(1, 5, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 25000),
)
COMMIT_SECONDS = Histogram(
    "edgeplane_ingest_commit_seconds",
    "Time to write and commit one batch.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENT_AGE_SECONDS = Histogram(
    "edgeplane_ingest_event_age_seconds",
    "From the device sending a message to its commit (device clocks may skew it): the lag "
    "of ingest behind the fleet.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
PENDING_MESSAGES = Gauge(
    "edgeplane_ingest_pending_messages", "Messages received and not yet acknowledged."
)
DB_RETRIES = Counter(
    "edgeplane_ingest_database_retries_total", "Batches written again after a database outage."
)
CONFIRMATIONS = Counter(
    "edgeplane_ingest_confirmations_published_total", "Confirmation messages sent to devices."
)
CONNECTED = Gauge("edgeplane_ingest_connected", "1 while connected to the MQTT broker.")
