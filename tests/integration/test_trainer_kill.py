"""``kill -9`` of the trainer process during training, then a restart → exactly one version."""

from __future__ import annotations

import os
import signal
import time

from .trainer_support import labeled_rows, produce_rows, request, trainer_process, values, wait_state

_PLUGIN = '''
import os, pathlib, time
from driftline.consumers.training.candidate import train_river

def train(rows, spec):
    """Announce that training started, then take as long as the test says."""
    pathlib.Path(os.environ["SLOW_PLUGIN_MARKER"]).write_text(str(os.getpid()))
    time.sleep(float(os.environ["SLOW_PLUGIN_SECONDS"]))
    return train_river(rows, {**spec, "model": "river"})
'''


def test_kill_9_during_training_then_restart_publishes_exactly_one_version(
    kafka_bootstrap, topic_names, produce, consume_all, tmp_path
):
    (tmp_path / "slow_plugin.py").write_text(_PLUGIN, encoding="utf-8")
    marker = tmp_path / "training-started"
    produce_rows(produce, topic_names.labeled, labeled_rows("k", 400))
    common = dict(
        transactional_id=f"kill-{os.urandom(4).hex()}",
        group_id=f"kill-{os.urandom(4).hex()}",
        plugin_dir=tmp_path,
        model="plugin:slow_plugin:train",
    )
    first = trainer_process(
        kafka_bootstrap,
        topic_names,
        tmp_path,
        **common,
        env={"SLOW_PLUGIN_MARKER": str(marker), "SLOW_PLUGIN_SECONDS": "300"},
    )
    second = None
    try:
        produce(topic_names.control, [request("k")])
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert first.poll() is None, "the first trainer exited early"
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.1)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        assert values(consume_all, topic_names.registry) == []  # nothing published by the killed trainer
        second = trainer_process(
            kafka_bootstrap,
            topic_names,
            tmp_path,
            **common,
            env={"SLOW_PLUGIN_MARKER": str(tmp_path / "second"), "SLOW_PLUGIN_SECONDS": "0"},
        )
        wait_state(kafka_bootstrap, topic_names, lambda s: s.serving_version("k") == "1.0.0", timeout=120)
        time.sleep(3)  # give a wrongly re-handled request time to show up
        registry = values(consume_all, topic_names.registry)
        created = [e for e in values(consume_all, topic_names.audit) if e["type"] == "model_version_created"]
        assert [(v["model_id"], v["version"]) for v in registry] == [("k", "1.0.0")]
        assert len(created) == 1 and len(values(consume_all, topic_names.model_updates)) == 1
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
