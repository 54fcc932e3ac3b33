"""A serving loop that always predicts with the version driftline says to serve.

Run next to ``driftline trainer`` (same config, so the same topics; it verifies with the trainer's public key,
``.driftline/signing.pub`` or ``[subscriber] verify_key``):

    .venv/bin/python examples/serving_loop.py churn [--config driftline.toml] [--seconds 60]

It starts serving at once from its local copy if it has one (offline/edge restarts),
follows ``driftline.model-updates``, refuses anything unsigned or tampered, and swaps
models between two predictions without stopping. Replace ``next_request`` with your
traffic.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from driftline.config import load_settings
from driftline.consumers.subscriber import ModelSubscriber
from driftline.kafka.topics import TopicNames
from driftline.runtime import client_config_from
from driftline.trust.keys import trusted_keys


def next_request(rng: random.Random) -> dict[str, float]:
    """Stand-in for a real request's features."""
    return {f"f{j}": rng.gauss(0.0, 1.0) for j in range(20)}


def main() -> int:
    parser = argparse.ArgumentParser(description="serve the current driftline model version")
    parser.add_argument("model_id")
    parser.add_argument("--config")
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    settings = load_settings(args.config)
    s = settings.subscriber
    key = trusted_keys(s.verify_key, s.verify_key_file, settings.trainer.signing_key)
    client = client_config_from(settings, args.bootstrap_servers)  # [kafka]'s security included
    subscriber = ModelSubscriber(
        args.model_id,
        str(client),
        TopicNames(prefix=settings.topics.prefix).model_updates,
        key,
        cache_dir=s.cache_dir,
        artifact_dir=s.artifact_dir or None,
        on_update=lambda m, v, _model, event: print(
            f"now serving {m} {v} ({event['type']} by {event['actor']}: {event['reason']})", flush=True
        ),
        on_error=lambda m, v, exc: print(f"refused {m} {v}: {exc}", file=sys.stderr, flush=True),
        client_config=client,
    )
    rng = random.Random(0)
    served = 0
    with subscriber:
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            current = subscriber.current  # one read: model and version always belong together
            if current is None:
                time.sleep(0.2)
                continue
            current.model.predict_one(next_request(rng))
            served += 1
            if served % 10_000 == 0:
                print(f"{served} predictions, version {current.version}", flush=True)
    print(f"served {served} predictions; last version {subscriber.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
