"""Debian's mosquitto (installed by `make test`) running the deployment's own configuration
(deploy/mosquitto/mosquitto.conf), on a free loopback port with its files in a temporary folder.
Used by the MQTT tests and bench/mqtt.py."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

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
