"""Kafka calls that outlive a broker outage: retry what librdkafka says may be retried.

librdkafka classifies each error of a transactional call (``KafkaError``): *retriable*
(the same call may be made again — a commit that timed out while the coordinator was
away), *abortable* (``txn_requires_abort``: abort, rewind the input, redo the work) or
*fatal* (the producer is fenced or broken: only a new producer can go on). Before,
ingest and the trainer ended on the first timed-out ``commit_transaction`` or
``init_transactions``, so a broker restart stopped them for good.

`call_retrying` repeats a call while its error is retriable, with backoff, until it
succeeds, ``stop`` is set, or ``max_wait_s`` has passed; every other error is raised at
once for the caller to abort (abortable) or stop (fatal).

`RenewableProducer` works around librdkafka's ``send_offsets_to_transaction`` blocking past
its timeout once its cached group coordinator went away (confluentinc/librdkafka#5456,
#5511, open in 2.16): a trainer idle through a broker restart hung in its next
transaction until the broker timed it out. A producer that saw the broker go away is
replaced, between transactions, by a new one with the same ``transactional.id``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, Producer

from driftline.logs import log

__all__ = ["RenewableProducer", "call_retrying", "is_abortable", "is_fatal", "is_retriable"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _error(exc: KafkaException) -> KafkaError | None:
    error = exc.args[0] if exc.args else None
    return error if isinstance(error, KafkaError) else None


_TRANSIENT = frozenset(
    {KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError.REQUEST_TIMED_OUT}
)
"""Codes a broker outage gives that librdkafka does not flag retriable on every call (a
consumer's ``committed()`` timing out): the same call succeeds once the broker is back."""


def is_retriable(exc: KafkaException) -> bool:
    """True when the same call may simply be made again (not abortable, not fatal)."""
    error = _error(exc)
    if error is None or error.fatal() or error.txn_requires_abort():
        return False
    return bool(error.retriable()) or error.code() in _TRANSIENT


def is_fatal(exc: KafkaException) -> bool:
    """True when the client cannot go on (a fenced producer): only a new one can."""
    error = _error(exc)
    return error is not None and bool(error.fatal())


def is_abortable(exc: KafkaException) -> bool:
    """True when the transaction must be aborted (and its input re-read), the producer kept."""
    error = _error(exc)
    return error is not None and error.txn_requires_abort() and not error.fatal()


def call_retrying(
    what: str,
    call: Callable[[], T],
    *,
    stop: threading.Event | None = None,
    max_wait_s: float | None = None,
    on_retry: Callable[[], None] | None = None,
    max_backoff_s: float = 10.0,
) -> T:
    """``call()``, made again while it fails with a retriable error; the last error otherwise.

    Retries wait 0.5 s, doubling up to ``max_backoff_s``, and end when ``stop`` is set or
    ``max_wait_s`` has passed (then the last error is raised). ``on_retry`` runs before
    each retry (a metric)."""
    started = time.monotonic()
    backoff = 0.5
    while True:
        try:
            return call()
        except KafkaException as exc:
            if not is_retriable(exc):
                raise
            waited = time.monotonic() - started
            if (stop is not None and stop.is_set()) or (max_wait_s is not None and waited + backoff > max_wait_s):
                raise
            error = _error(exc)
            log(
                logger,
                logging.WARNING,
                "kafka call failed; retrying",
                call=what,
                code=error.name() if error is not None else "?",
                detail=error.str() if error is not None else str(exc),
                waited_s=round(waited, 1),
                retry_in_s=backoff,
            )
            if on_retry is not None:
                on_retry()
            if stop is not None:
                stop.wait(backoff)
            else:
                time.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)


class RenewableProducer:
    """A transactional producer that is made anew, between transactions, after the broker went away.

    Its ``error_cb`` notes a broker outage (``_TRANSPORT``, ``_ALL_BROKERS_DOWN``, …; any
    ``error_cb`` already in ``config`` still gets every error). `renew_if_needed` — called
    before a transaction begins, never inside one — serves pending callbacks and, after an
    outage, replaces the producer; ``init_transactions`` of the new one fences the old one.
    """

    def __init__(self, config: Mapping[str, Any], init_timeout_s: float = 60.0) -> None:
        self._config = dict(config)
        self._inner_error_cb = self._config.pop("error_cb", None)
        self._init_timeout_s = init_timeout_s
        self.broker_was_away = False
        self.producer = self._make()

    def _make(self) -> Producer:
        return Producer({**self._config, "error_cb": self._on_error})

    def _on_error(self, error: Any) -> None:
        with contextlib.suppress(SystemError):  # a fatal error: the client raises it itself
            if error.code() in _TRANSIENT:
                self.broker_was_away = True
        if self._inner_error_cb is not None:
            self._inner_error_cb(error)

    def init_transactions(self, stop: threading.Event | None, on_retry: Callable[[], None] | None = None) -> None:
        producer = self.producer
        call_retrying(
            "init_transactions", lambda: producer.init_transactions(self._init_timeout_s), stop=stop, on_retry=on_retry
        )

    def renew_if_needed(self, stop: threading.Event | None, on_retry: Callable[[], None] | None = None) -> bool:
        """Replace the producer if it saw the broker go away since the last check; True if it did."""
        self.producer.poll(0)
        if not self.broker_was_away:
            return False
        self.broker_was_away = False
        old = self.producer
        with contextlib.suppress(Exception):
            old.flush(1)  # between transactions nothing is pending
        self.producer = self._make()
        log(logger, logging.INFO, "transactional producer renewed after a broker outage")
        self.init_transactions(stop, on_retry)
        return True
