"""A real Sentinel set-up on 127.0.0.1 for tests: a primary, replicas and three Sentinels.

Every server is a ``redis-server`` process on a free port with its own directory; the Sentinels
(``redis-server sentinel.conf --sentinel``) mark a silent primary down after `DOWN_AFTER_MS`.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from tests.support.redis_server import free_port, redis_server_binary, wait_until_answers

MASTER = "mymaster"
DOWN_AFTER_MS = 1000


class Node:
    """One ``redis-server`` process (a data node or a Sentinel)."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = free_port()
        self.password: str | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            socket_connect_timeout=0.5,
            socket_timeout=2,
        )

    def run(self, args: list[str]) -> None:
        log = (self.directory / "server.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until_answers(self.client(), f"{self.name} on port {self.port}")

    def replication(self) -> dict[str, object]:
        client = self.client()
        try:
            return dict(client.info("replication"))
        finally:
            client.close()

    def kill(self) -> None:
        """kill -9."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class SentinelSetup:
    """A primary, `replicas` replicas and three Sentinels watching them as `MASTER`."""

    def __init__(
        self,
        directory: Path,
        replicas: int = 2,
        appendfsync: str = "everysec",
        sentinel_password: str | None = None,
    ) -> None:
        self.directory = directory
        self.primary = Node(directory, "primary")
        self.replicas = [Node(directory, f"replica-{i + 1}") for i in range(replicas)]
        self.sentinels = [Node(directory, f"sentinel-{i + 1}") for i in range(3)]
        self.appendfsync = appendfsync
        for sentinel in self.sentinels:
            sentinel.password = sentinel_password

    @property
    def data_nodes(self) -> list[Node]:
        return [self.primary, *self.replicas]

    def sentinel_setting(self) -> str:
        """``RELAY_REDIS_SENTINELS``."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def _data_args(self, node: Node) -> list[str]:
        return [
            redis_server_binary(),
            "--port", str(node.port),
            "--bind", "127.0.0.1",
            "--dir", str(node.directory),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            # Full syncs straight over the socket: a replica joins a new primary in milliseconds.
            "--repl-diskless-sync", "yes",
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip

    def start(self) -> SentinelSetup:
        self.primary.run(self._data_args(self.primary))
        for replica in self.replicas:
            replica.run([*self._data_args(replica), "--replicaof", "127.0.0.1", str(self.primary.port)])
        self.wait_replicas(len(self.replicas), primary=self.primary)
        for sentinel in self.sentinels:
            conf = sentinel.directory / "sentinel.conf"
            conf.write_text(
                f"port {sentinel.port}\n"
                "bind 127.0.0.1\n"
                f"dir {sentinel.directory}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
                f"sentinel parallel-syncs {MASTER} 2\n"
            )
            if (
                sentinel.password is not None
            ):  # the Sentinels' own password, which they use among themselves too
                with conf.open("a") as extra:
                    extra.write(
                        f"requirepass {sentinel.password}\nsentinel sentinel-pass {sentinel.password}\n"
                    )
            sentinel.run([redis_server_binary(), str(conf), "--sentinel"])
        self.wait_sentinels_agree()
        return self

    def wait_replicas(self, count: int, within: float = 20.0, primary: Node | None = None) -> None:
        """Until `primary` (default: the one the Sentinels name) has `count` replicas online."""
        deadline = time.monotonic() + within
        while True:
            try:
                info = (primary or self.current_primary()).replication()
                online = sum(
                    1
                    for key, value in info.items()
                    if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
                )
                if online >= count:
                    return
            except (redis.RedisError, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} replica(s) not online within {within}s")
            time.sleep(0.05)

    def wait_sentinels_agree(self, within: float = 20.0) -> None:
        """Until every Sentinel knows the other two and the replicas (so that a failover can happen)."""
        deadline = time.monotonic() + within
        while True:
            ready = 0
            for sentinel in self.sentinels:
                client = sentinel.client()
                try:
                    state = client.sentinel_master(MASTER)
                    if int(state["num-other-sentinels"]) >= 2 and int(state["num-slaves"]) >= len(
                        self.replicas
                    ):
                        ready += 1
                except redis.RedisError:
                    pass
                finally:
                    client.close()
            if ready == len(self.sentinels):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the Sentinels did not discover each other")
            time.sleep(0.1)

    def primary_address(self) -> tuple[str, int]:
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                host, port = client.sentinel_get_master_addr_by_name(MASTER)
                return str(host.decode() if isinstance(host, bytes) else host), int(port)
            except redis.RedisError:
                continue
            finally:
                client.close()
        raise RuntimeError("no Sentinel answers")

    def current_primary(self) -> Node:
        _, port = self.primary_address()
        return next(node for node in self.data_nodes if node.port == port)

    def wait_promotion(self, old: Node, within: float = 30.0) -> Node:
        """Until the Sentinels name a primary other than `old`, and it says it is one."""
        deadline = time.monotonic() + within
        while True:
            try:
                node = self.current_primary()
                if node is not old and node.replication()["role"] == "master":
                    return node
            except (redis.RedisError, RuntimeError, StopIteration):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no new primary within {within}s")
            time.sleep(0.05)

    def stop(self) -> None:
        for node in [*self.sentinels, *self.data_nodes]:
            node.kill()
