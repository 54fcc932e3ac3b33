"""The Apache Kafka jars, resolved once from Maven Central into a versioned cache.

The local broker (`driftline.kafka.local_broker`) runs ``kafka.Kafka`` from these jars:
Maven resolves ``org.apache.kafka:kafka_2.13`` with its runtime dependencies (the pom in
``runtime/``) on first use; every later start, of any instance, reuses the cache.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from driftline.errors import BrokerUnavailable

__all__ = ["CACHE_ENV", "INSTALL_HINT", "KAFKA_VERSION", "RUNTIME_DIR", "ensure_jars", "jar_cache_dir"]

KAFKA_VERSION = "4.1.1"
RUNTIME_DIR = Path(__file__).parent / "runtime"
CACHE_ENV = "DRIFTLINE_KAFKA_CACHE_DIR"
INSTALL_HINT = (
    "install Java 17+ and Maven (apt-get install openjdk-17-jre-headless maven), "
    "or point driftline at a running broker with KAFKA_BOOTSTRAP_SERVERS=host:port"
)
_MARKER = ".complete"
_LOG = logging.getLogger(__name__)


def jar_cache_dir(cache_root: str | os.PathLike[str] | None = None) -> Path:
    """Where the broker jars live: ``<root>/kafka-<version>/libs``.

    Root: the argument, else ``$DRIFTLINE_KAFKA_CACHE_DIR``, else ``$XDG_CACHE_HOME/driftline``
    (``~/.cache/driftline``). Versioned, so upgrading Kafka never mixes jars.
    """
    root = cache_root or os.environ.get(CACHE_ENV) or None
    if root is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(xdg) / "driftline"
    return Path(root).expanduser() / f"kafka-{KAFKA_VERSION}" / "libs"


def ensure_jars(cache_root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the runtime pom with Maven into the jar cache unless already complete.

    A marker file is written only after Maven copied everything, and the copy goes to a
    temporary directory renamed into place, so an interrupted first run never leaves a
    half-filled cache that a later run would trust. A lock file serialises concurrent
    first runs (two test sessions starting at once).
    """
    libs = jar_cache_dir(cache_root)
    if (libs / _MARKER).exists():
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    with _locked(libs.parent / ".lock"):
        if (libs / _MARKER).exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerUnavailable(f"Maven (mvn) is needed once to fetch the Kafka jars; {INSTALL_HINT}")
        _LOG.info("resolving kafka %s jars with maven into %s (first run, ~30 s)", KAFKA_VERSION, libs)
        staging = Path(tempfile.mkdtemp(prefix="libs-", dir=libs.parent))
        try:
            work = staging / "pom"
            work.mkdir()
            shutil.copy(RUNTIME_DIR / "pom.xml", work / "pom.xml")
            out = staging / "libs"
            proc = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(work / "pom.xml"),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={out}",
                    "-DincludeScope=runtime",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0 or not any(out.glob("kafka_2.13-*.jar")):
                tail = (proc.stdout + proc.stderr).strip().splitlines()[-20:]
                raise BrokerUnavailable(
                    "maven could not resolve the Kafka jars (is Maven Central reachable?):\n" + "\n".join(tail)
                )
            (out / _MARKER).write_text(KAFKA_VERSION + "\n")
            if libs.exists():
                shutil.rmtree(libs)  # an incomplete copy from an older layout
            out.rename(libs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    _LOG.info("kafka jars ready (%d files)", len(list(libs.glob("*.jar"))))
    return libs


@contextlib.contextmanager
def _locked(path: Path):  # type: ignore[no-untyped-def]
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
