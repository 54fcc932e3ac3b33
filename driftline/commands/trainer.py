"""``driftline trainer``: run the trainer/registry process (the registry's single writer)."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from driftline.config import Settings, load_settings
from driftline.logs import log
from driftline.runtime import client_config_from, given_flags, serve_process_metrics, stop_on_signals

if TYPE_CHECKING:
    from driftline.trust.keys import Ed25519PrivateKey

__all__ = ["register", "signing_key"]

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trainer", help="retrain on requests, validate, version, sign and publish models (exactly-once)"
    )
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (default: config, env, local broker)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (default [trainer] metrics_port; 0 = any)")
    parser.add_argument("--transactional-id", help="stable id of this trainer (default [trainer] transactional_id)")
    parser.set_defaults(func=run)


def signing_key(settings: Settings, create: bool) -> Ed25519PrivateKey:
    """The artifact signing key (config/env → key file → generated into the key file, logged)."""
    from driftline.trust.keys import key_id, load_or_create_signing_key, public_key_file

    key, created = load_or_create_signing_key(settings.trainer.signing_key, settings.trainer.signing_key_file, create)
    if created:
        log(
            logger,
            logging.WARNING,
            "generated a new artifact signing key pair; give subscribers the public key",
            key_file=settings.trainer.signing_key_file,
            public_key_file=str(public_key_file(settings.trainer.signing_key_file)),
            key_id=key_id(key.public_key()),
        )
    return key


def run(args: argparse.Namespace) -> int:
    from driftline.consumers.trainer.metrics import TrainerMetrics
    from driftline.consumers.trainer.service import Trainer
    from driftline.consumers.training.run import TrainingContext
    from driftline.kafka.topics import TopicNames
    from driftline.trust.keys import public_key_from_hex

    overrides = given_flags(args, "metrics_port", "transactional_id")
    settings = load_settings(args.config, overrides={"trainer": overrides})
    names = TopicNames(prefix=settings.topics.prefix)
    trainer_topics = [names.control, names.labeled, names.registry, names.model_updates, names.audit, names.dlq]
    client = client_config_from(settings, args.bootstrap_servers, check_topics=trainer_topics)
    key = signing_key(settings, create=True)
    context = TrainingContext(
        key,
        settings.trainer.artifact_dir,
        settings.trainer.inline_limit_bytes,
        settings.governance,
        settings.reference.numeric_bins,
        settings.reference.top_k,
        previous_keys=tuple(
            public_key_from_hex(text, "trainer.trusted_public_keys")
            for text in settings.trainer.trusted_public_keys.replace(",", " ").split()
        ),
    )
    registry = CollectorRegistry()
    metrics = TrainerMetrics(registry)
    serve_process_metrics(registry, settings.trainer.metrics_port, settings, bootstrap=str(client))
    Trainer(client, names, settings.trainer, context, metrics).run(stop_on_signals())
    return 0
