"""The ingest process: raw events → validated columnar micro-batches, bad input → DLQ, exactly once."""
