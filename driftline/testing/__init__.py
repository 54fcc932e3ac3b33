"""Helpers shared by the tests and the benchmarks: a broker for them, synthetic traffic, metrics scraping.

Not used by any driftline process. ``kafka`` finds or starts a broker and produces and
consumes records; ``synthetic`` and ``column_batches`` generate events and batches;
``events`` builds raw feature events; ``metrics`` reads a process's Prometheus endpoint.
"""
