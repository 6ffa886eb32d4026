"""Apache Kafka KRaft cluster on 127.0.0.1 from Maven Central jars: `airgrid kafka up`, tests.

Each node is a combined broker and controller (`process.roles=broker,controller`) with a static
quorum of all nodes, its own `server.properties` and log under the data dir. The jars come from
`deploy/kafka/pom.xml` through Maven into `.airgrid/cache/kafka-<version>/`, once (kafka_jars.py).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from airgrid.servers.kafka_jars import KafkaClusterError, fetch_jars, say_on_stderr
from airgrid.servers.ports import free_port

HOST = "127.0.0.1"
DEFAULT_PORT = 9092

# Small heaps and the serial collector: a dev cluster of three JVMs shares two cores with
# everything else on the machine.
JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
STOP_GRACE_SECONDS = 15.0


def port_is_free(port: int) -> bool:
    """Nothing listens on `port`; connections of a stopped server in TIME_WAIT do not count,
    as the JVM binds with SO_REUSEADDR."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def new_cluster_id() -> str:
    """A Kafka Uuid as `kafka-storage random-uuid` prints it: 16 bytes, URL-safe base64."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass
class KafkaNode:
    """One combined broker+controller process; `node_id` is Kafka's `node.id` (1..N)."""

    node_id: int
    port: int
    controller_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    console: IO[bytes] | None = None

    @property
    def config_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.directory / "logs" / "server.log"

    @property
    def console_file(self) -> Path:
        return self.directory / "logs" / "console.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class KafkaCluster:
    """N Apache Kafka nodes in KRaft mode on 127.0.0.1, started and stopped by their owner.

    `port` is the first client port (nodes listen on port, port+1, ...); None picks free
    ports. `data_dir` keeps the data (a restart reuses it); None uses a temporary folder
    removed by `stop()`.
    """

    def __init__(
        self,
        brokers: int = 1,
        port: int | None = None,
        data_dir: Path | None = None,
        *,
        cache_dir: Path | None = None,
        say: Callable[[str], None] = say_on_stderr,
    ) -> None:
        if brokers < 1:
            raise KafkaClusterError("a cluster needs at least one broker")
        self.brokers = brokers
        self.say = say
        self.cache_dir = cache_dir
        self._temporary = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="kafka-"))
        self._requested_port = port
        self.nodes: dict[int, KafkaNode] = {}
        self._jars: Path | None = None

    # -- what clients need --------------------------------------------------------------------

    @property
    def replication(self) -> int:
        """Replication factor of topics: every broker, at most 3."""
        return min(3, self.brokers)

    @property
    def min_insync_replicas(self) -> int:
        return 2 if self.replication >= 3 else 1

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{HOST}:{node.port}" for node in self.nodes.values())

    def pid(self, node_id: int) -> int | None:
        process = self.nodes[node_id].process
        return process.pid if process is not None and process.poll() is None else None

    # -- life cycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        """Fetch the jars if needed, format new storage, start every node, wait until all answer."""
        self._jars = fetch_jars(self.cache_dir, say=self.say)
        java = shutil.which("java")
        if java is None:
            raise KafkaClusterError(
                "java not found: apt-get install openjdk-17-jre-headless (Kafka 4 needs Java 17+)"
            )
        self._java = java
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = self._plan()
        atexit.register(self.stop)
        try:
            self._format(cluster_id)
            for node in self.nodes.values():
                self._spawn(node)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM to every node, SIGKILL after a grace period; a temporary data dir is removed."""
        atexit.unregister(self.stop)
        running = [node for node in self.nodes.values() if node.running]
        for node in running:
            _signal(node, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for node in running:
            _reap(node, max(0.1, deadline - time.monotonic()))
        for node in self.nodes.values():
            _close_console(node)
        if self._temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self, node_id: int) -> None:
        """SIGKILL one node, as a crash: no controlled shutdown, no leadership hand-off."""
        node = self.nodes[node_id]
        if node.running:
            _signal(node, signal.SIGKILL)
            _reap(node, STOP_GRACE_SECONDS)
        _close_console(node)

    def stop_node(self, node_id: int) -> None:
        """A controlled shutdown of one node (SIGTERM, SIGKILL after the grace period)."""
        node = self.nodes[node_id]
        if node.running:
            _signal(node, signal.SIGTERM)
            _reap(node, STOP_GRACE_SECONDS)
        _close_console(node)

    def start_node(self, node_id: int, timeout: float = 60.0) -> None:
        """Start a stopped or killed node again, on its ports and its data."""
        node = self.nodes[node_id]
        if node.running:
            return
        self._spawn(node)
        self._wait(lambda: _answers(node.port, self.brokers), timeout, f"node {node_id}")

    def start_nodes(self, timeout: float = 120.0) -> None:
        """Start every stopped or killed node at once, on its ports and its data, and wait
        until all answer: after the whole cluster went down, a node alone has no quorum."""
        for node in self.nodes.values():
            if not node.running:
                self._spawn(node)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until every node answers metadata and lists all brokers as registered."""
        for node in self.nodes.values():
            answers = functools.partial(_answers, node.port, self.brokers)
            self._wait(answers, timeout, f"node {node.node_id}")

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inside ----------------------------------------------------------------------------------

    def _plan(self) -> str:
        """Ports and folders of every node; a data dir used before keeps its id and ports."""
        state_file = self.data_dir / "cluster.json"
        saved = json.loads(state_file.read_text()) if state_file.exists() else None
        if saved is not None and saved["brokers"] != self.brokers:
            raise KafkaClusterError(
                f"{self.data_dir} holds a cluster of {saved['brokers']} brokers; start it with "
                f"--brokers {saved['brokers']} or use another --dir"
            )
        ports = self._client_ports()
        controller_ports: list[int] = []
        for i in range(self.brokers):
            old = saved["controller_ports"][i] if saved else None
            taken = set(ports) | set(controller_ports)
            if old is not None and old not in taken and port_is_free(old):
                controller_ports.append(old)
                continue
            port = free_port()
            while port in taken:
                port = free_port()
            controller_ports.append(port)
        cluster_id = saved["cluster_id"] if saved else new_cluster_id()
        self.nodes = {
            i + 1: KafkaNode(i + 1, ports[i], controller_ports[i], self.data_dir / f"node-{i + 1}")
            for i in range(self.brokers)
        }
        state_file.write_text(
            json.dumps(
                {
                    "cluster_id": cluster_id,
                    "brokers": self.brokers,
                    "controller_ports": controller_ports,
                },
                indent=1,
            )
        )
        for node in self.nodes.values():
            (node.directory / "logs").mkdir(parents=True, exist_ok=True)
            node.config_file.write_text(self._server_properties(node))
            (node.directory / "log4j2.properties").write_text(_log4j2_properties(node.log_file))
        return str(cluster_id)

    def _client_ports(self) -> list[int]:
        if self._requested_port is None:
            ports: list[int] = []
            while len(ports) < self.brokers:
                port = free_port()
                if port not in ports:
                    ports.append(port)
            return ports
        ports = [self._requested_port + i for i in range(self.brokers)]
        busy = [p for p in ports if not port_is_free(p)]
        if busy:
            raise KafkaClusterError(
                f"port(s) {', '.join(map(str, busy))} on {HOST} already taken; stop what listens "
                f"there or choose another --port (the cluster needs {ports[0]}..{ports[-1]})"
            )
        return ports

    def _server_properties(self, node: KafkaNode) -> str:
        voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in self.nodes.values())
        rf, isr = self.replication, self.min_insync_replicas
        settings = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{node.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": node.directory / "data",
            # Topics exist only as airgrid/topics.py declares them (ensure_topics).
            "auto.create.topics.enable": "false",
            "num.partitions": 1,
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "unclean.leader.election.enable": "false",
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 12,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": 12,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
            "group.initial.rebalance.delay.ms": 0,
            "log.cleaner.enable": "true",
            "log.cleaner.threads": 1,
            "log.cleaner.backoff.ms": 1000,
            "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
            "background.threads": 2,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _classpath(self) -> str:
        assert self._jars is not None
        return f"{self._jars}{os.sep}*"

    def _format(self, cluster_id: str) -> None:
        """`kafka-storage format` for every node whose storage is new, in parallel."""
        pending = {}
        for node in self.nodes.values():
            if (node.directory / "data" / "meta.properties").exists():
                continue
            command = [
                self._java,
                *JVM_OPTIONS,
                "-cp",
                self._classpath(),
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                cluster_id,
                "--config",
                str(node.config_file),
            ]
            pending[node.node_id] = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        for node_id, process in pending.items():
            output, _ = process.communicate(timeout=120)
            if process.returncode != 0:
                raise KafkaClusterError(
                    f"formatting the storage of node {node_id} failed (exit "
                    f"{process.returncode}):\n{_tail(output.decode(errors='replace'))}"
                )

    def _spawn(self, node: KafkaNode) -> None:
        _close_console(node)
        node.console = node.console_file.open("ab")
        node.process = subprocess.Popen(
            [
                self._java,
                *JVM_OPTIONS,
                f"-Dlog4j2.configurationFile={node.directory / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={node.log_file.parent}",
                "-cp",
                self._classpath(),
                "kafka.Kafka",
                str(node.config_file),
            ],
            stdout=node.console,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: cleanup signals the whole process group, whatever else fails.
            start_new_session=True,
        )

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            dead = [n for n in self.nodes.values() if n.process is not None and not n.running]
            if dead:
                node = dead[0]
                assert node.process is not None
                raise KafkaClusterError(
                    f"Kafka node {node.node_id} exited with code {node.process.returncode} at "
                    f"start-up; its log ({node.log_file}) ends with:\n{self._log_tail(node)}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                tails = "\n".join(
                    f"-- node {n.node_id} ({n.log_file}):\n{self._log_tail(n)}"
                    for n in self.nodes.values()
                )
                raise KafkaClusterError(
                    f"{what} of the Kafka cluster did not answer with all {self.brokers} "
                    f"brokers within {timeout:.0f}s:\n{tails}"
                )
            time.sleep(0.25)

    @staticmethod
    def _log_tail(node: KafkaNode) -> str:
        parts = []
        for path in (node.console_file, node.log_file):
            if path.exists() and path.stat().st_size:
                parts.append(_tail(path.read_text(errors="replace")))
        return "\n".join(parts) or "(empty)"


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _signal(node: KafkaNode, signum: int) -> None:
    if node.process is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, signum)


def _reap(node: KafkaNode, timeout: float) -> None:
    if node.process is None:
        return
    try:
        node.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal(node, signal.SIGKILL)
        node.process.wait(timeout=STOP_GRACE_SECONDS)


def _close_console(node: KafkaNode) -> None:
    if node.console is not None:
        node.console.close()
        node.console = None


def _log4j2_properties(log_file: Path) -> str:
    return "\n".join(
        [
            "status = warn",
            "appender.file.type = File",
            "appender.file.name = file",
            f"appender.file.fileName = {log_file}",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.file.ref = file",
            # The request log and the state change log at INFO would dwarf the rest.
            "logger.request.name = kafka.request.logger",
            "logger.request.level = WARN",
            "logger.state.name = state.change.logger",
            "logger.state.level = WARN",
            "",
        ]
    )


def _answers(port: int, brokers: int) -> bool:
    """The broker at `port` answers a metadata request listing `brokers` live brokers.

    Runs on a thread of its own so the check works whether or not the caller's thread has an
    event loop running (a pytest fixture, the CLI).
    """
    with socket.socket() as sock:
        sock.settimeout(0.5)
        if sock.connect_ex((HOST, port)) != 0:
            return False
    result: list[bool] = []
    thread = threading.Thread(
        target=lambda: result.append(asyncio.run(_metadata_lists(port, brokers))), daemon=True
    )
    thread.start()
    thread.join(timeout=15)
    return bool(result and result[0])


async def _metadata_lists(port: int, brokers: int) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=f"{HOST}:{port}", request_timeout_ms=3_000)
    try:
        await asyncio.wait_for(admin.start(), timeout=5)
        cluster = await asyncio.wait_for(admin.describe_cluster(), timeout=5)
        return len(cluster["brokers"]) >= brokers and cluster.get("controller_id", -1) >= 0
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
