"""Debian's mosquitto (installed by `make test`) running the deployment's own configuration
(deploy/mosquitto/mosquitto.conf), on a free loopback port with its files in a temporary folder.
Used by the MQTT tests and bench/mqtt.py."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROJECT = Path(__file__).resolve().parent.parent
CONF = PROJECT / "deploy" / "mosquitto" / "mosquitto.conf"
USER, PASSWORD = "m40-bridge", "un mot de passe mqtt"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_config(text: str, *, port: int, folder: Path) -> str:
    """The deployment's configuration with what only a container has replaced: the listener on
    127.0.0.1:port, the data folder, and the user (the tests run as root: stay root)."""
    text, n = re.subn(r"^listener 1883$", f"listener {port} 127.0.0.1", text, flags=re.M)
    assert n == 1, "deploy/mosquitto/mosquitto.conf: expected one `listener 1883`"
    text = text.replace("/mosquitto/data/", f"{folder}/")
    assert not re.search(r"^[a-z_]+ /mosquitto/", text, flags=re.M), "a container path is left"
    return text + "\nuser root\n"


class Mosquitto:
    """A broker process; `stop()` then `start()` again keeps its persisted sessions."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        if not Path(binary).exists():
            raise RuntimeError("Debian's mosquitto is missing: `make test` installs it (apt-get install mosquitto)")
        self.binary = binary
        subprocess.run([passwd, "-c", "-b", str(self.folder / "passwd"), USER, PASSWORD], check=True,
                       capture_output=True)
        self.conf = self.folder / "mosquitto.conf"
        self.conf.write_text(local_config(CONF.read_text(), port=self.port, folder=self.folder))
        self.proc: subprocess.Popen | None = None
        self.log = self.folder / "mosquitto.log"

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class BridgeProcess:
    """`python -m ingest.mqtt` with its own /metrics port."""

    APPLICATION_NAME = "m40-test-mqtt-bridge"

    def __init__(self, broker: Mosquitto, client_id: str, log_path):
        self.metrics_port = _free_port()
        self.env = dict(os.environ, MQTT_URL=broker.url, MQTT_USERNAME=USER, MQTT_PASSWORD=PASSWORD,
                        MQTT_CLIENT_ID=client_id, MQTT_METRICS_PORT=str(self.metrics_port), LOG_FORMAT="console",
                        PGAPPNAME=self.APPLICATION_NAME)  # libpq's default: its sessions can be told apart
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> BridgeProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "ingest.mqtt"], cwd=PROJECT, env=self.env,
                                     stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while self.metric("m40_mqtt_connected") != 1:
            assert self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, "bridge did not connect: " + self.log()
            time.sleep(0.1)
        return self

    def metrics_text(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text

    def metric(self, name: str, labels: str = "") -> float | None:
        try:
            text = self.metrics_text()
        except httpx.HTTPError:
            return None
        for line in text.splitlines():
            if line.startswith(name + (labels and "{" + labels + "}") + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def log(self) -> str:
        return open(self.log_path, encoding="utf-8", errors="replace").read()[-3000:]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
