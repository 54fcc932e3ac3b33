"""What every model serves now, read from ``driftline.model-updates`` by every worker.

``driftline.model-updates`` is compacted and keyed by ``model_id``: the topic *is* the
durable table of serving versions (the trainer is its only writer). Every worker needs
every model's entry, whatever partitions of the observations it owns, so each worker
reads the whole topic from the beginning without a consumer group — the same thing a
faust ``GlobalTable`` does with its changelog, but tolerant of foreign input: a value
that is not JSON, not a pointer move the trainer signed (`driftline.trust.pointer_moves`: its
reference profile and gate metrics are what drift is measured against), or older than
the move already applied is counted and sent to the DLQ instead of stopping recovery.

``ServingVersions`` is the pure part (apply a record, look up a model);
``ModelUpdatesReader`` feeds it from Kafka with aiokafka inside the faust worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from driftline.kafka.clients import KafkaTarget, as_client_config
from driftline.logs import log
from driftline.stream.drift.reference import ReferenceProfile
from driftline.trust.keys import TrustedKeys
from driftline.trust.pointer_moves import PointerRejected, verify_pointer

__all__ = ["ModelUpdatesReader", "Serving", "ServingVersions"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Serving:
    """A model's serving version, the reference profile shipped with it (if any), and the
    figures its gate measured (what the stream's post-deployment check holds it to)."""

    version: str
    reference: ReferenceProfile | None
    gate_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    sequence: int = 0


class ServingVersions:
    """model_id → ``Serving``; ``apply`` returns ``applied``, ``ignored`` or ``invalid: …``.

    Examples:
        >>> from driftline.trust.pointer_moves import sign_pointer
        >>> from driftline.trust.keys import Ed25519PrivateKey
        >>> key = Ed25519PrivateKey.generate()
        >>> sv = ServingVersions(TrustedKeys([key.public_key()]))
        >>> move = {"type": "model_version_promoted", "model_id": "m", "version": "1.0.0", "sequence": 1,
        ...         "status": "approved", "reference_profile": None}
        >>> sv.apply(b"m", orjson.dumps(sign_pointer(move, key)))
        'applied'
        >>> sv.get("m").version, sv.apply(b"m", b"{oops"), sv.apply(b"m", orjson.dumps(move))
        ('1.0.0', 'invalid: not JSON', 'invalid: unsigned: m 1.0.0: the pointer move is not signed')
    """

    def __init__(self, keys: TrustedKeys) -> None:
        self.keys = keys
        self.models: dict[str, Serving] = {}

    def get(self, model_id: str) -> Serving | None:
        return self.models.get(model_id)

    def apply(self, key: bytes | None, value: bytes | None) -> str:
        if value is None:  # compaction tombstone: the model no longer serves anything
            if key:
                self.models.pop(key.decode("utf-8", "replace"), None)
            return "applied"
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return "invalid: not JSON"
        try:
            move = verify_pointer(doc, self.keys)
        except PointerRejected as exc:
            return f"invalid: {exc.reason}: {exc}"[:300]
        current = self.models.get(move.model_id)
        if current is not None and move.sequence <= current.sequence:
            if move.sequence == current.sequence and move.version == current.version:
                return "ignored"  # the same move read again (the reader restarted)
            older = f"{move.model_id} {move.version} sequence {move.sequence} <= {current.sequence}"
            return f"invalid: older_sequence: {older}"
        profile = doc.get("reference_profile")
        reference = None
        if isinstance(profile, dict):
            try:
                reference = ReferenceProfile.from_dict(profile)
            except (KeyError, TypeError, ValueError) as exc:
                return f"invalid: reference_profile ({exc.__class__.__name__}: {exc})"[:200]
        metrics = doc.get("metrics")
        gate = (
            {
                k: float(v)
                for k, v in metrics.items()
                if isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            }
            if isinstance(metrics, dict)
            else {}
        )
        self.models[move.model_id] = Serving(move.version, reference, gate, move.sequence)
        return "applied"


Invalid = Callable[[Any, str], Awaitable[None]]


class ModelUpdatesReader:
    """Reads the whole topic into ``serving``; ``ready`` is set once caught up with its end."""

    def __init__(
        self,
        bootstrap: KafkaTarget,
        topic: str,
        serving: ServingVersions,
        on_outcome: Callable[[str], None] | None = None,
        on_invalid: Invalid | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.serving = serving
        self.on_outcome = on_outcome
        self.on_invalid = on_invalid
        self.ready = asyncio.Event()

    async def run(self, stopped: asyncio.Event | None = None) -> None:
        """Consume until cancelled (or ``stopped`` is set)."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        # read_committed: the trainer moves pointers in transactions; an aborted one never served
        consumer = AIOKafkaConsumer(
            **as_client_config(self.bootstrap).aiokafka_kwargs(),
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(self.topic)
            if partitions is None:
                partitions = await self._wait_partitions(consumer)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while stopped is None or not stopped.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=1000)
                for records in batches.values():
                    for record in records:
                        await self._apply(record)
                if not self.ready.is_set() and await self._caught_up(consumer, ends):
                    self.ready.set()
                    log(logger, logging.INFO, "model updates caught up", models=len(self.serving.models))
        finally:
            await consumer.stop()

    async def _wait_partitions(self, consumer: Any) -> set[int]:
        for _ in range(50):
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(self.topic)
            if partitions:
                return partitions
            await asyncio.sleep(0.2)
        raise RuntimeError(f"topic {self.topic} not found")

    @staticmethod
    async def _caught_up(consumer: Any, ends: dict[Any, int]) -> bool:
        for tp, end in ends.items():
            if await consumer.position(tp) < end:
                return False
        return True

    async def _apply(self, record: Any) -> None:
        outcome = self.serving.apply(record.key, record.value)
        kind = outcome.split(":", 1)[0]
        if self.on_outcome is not None:
            self.on_outcome(kind)
        if kind == "invalid":
            log(
                logger,
                logging.WARNING,
                "bad model-updates record",
                partition=record.partition,
                offset=record.offset,
                reason=outcome,
            )
            if self.on_invalid is not None:
                await self.on_invalid(record, outcome)
