"""Build tiny wheels by hand (a zip with METADATA, WHEEL and RECORD): tests need no index.
Also the demo package the shared wheel fixtures hold, and conda-like envs that hold it."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from runtime_env.plugins.installers import uv_bin

# The package of the wheel_dir and two_versions fixtures (conftest.py): version 1.0 holds
# VALUE = 'one', version 2.0 holds VALUE = 'two'.
DEMO = "mr_demo_pkg"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def make_wheel(directory: str | Path, name: str, version: str = "1.0",
               module_code: str = "", *, requires: list[str] | tuple[str, ...] = ()) -> Path:
    """Write `<name>-<version>-py3-none-any.whl` into `directory` and return its path.

    The wheel holds one package `<name>` whose `__init__.py` is `module_code` (plus
    `__version__`), and declares `requires` as its dependencies (Requires-Dist).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    module = re.sub(r"[-.]+", "_", name).lower()
    dist = module
    info = f"{dist}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {r}" for r in requires]
    files = {
        f"{module}/__init__.py": f"__version__ = {version!r}\n{module_code}\n",
        f"{info}/METADATA": "\n".join(metadata) + "\n",
        f"{info}/WHEEL": ("Wheel-Version: 1.0\nGenerator: minray-tests\n"
                          "Root-Is-Purelib: true\nTag: py3-none-any\n"),
        f"{info}/top_level.txt": module + "\n",
    }
    record = [f"{p},{_record_hash(c.encode())},{len(c.encode())}" for p, c in files.items()]
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p, c in files.items():
            zf.writestr(p, c)
    return path


def local(wheel_dir: str | Path) -> list[str]:
    """Installer options that keep an install on local wheels only."""
    return ["--no-index", "--find-links", str(wheel_dir)]


def demo_wheel(directory: str | Path, version: str, value: str) -> Path:
    """The demo package's wheel of `version`, whose VALUE is `value`, in `directory`."""
    return make_wheel(directory, DEMO, version, f"VALUE = {value!r}")


def make_prefix(path: Path, wheel_dir: Path | None = None) -> Path:
    """A conda-like env: a venv on the driver's python, with conda-meta/ (and, given a folder of
    wheels, the demo package installed from it)."""
    subprocess.run([uv_bin(), "venv", "--quiet", "--python", sys.executable, str(path)],
                   check=True)
    (path / "conda-meta").mkdir()
    if wheel_dir:
        subprocess.run([uv_bin(), "pip", "install", "--quiet", "--python",
                        str(path / "bin" / "python"), *local(wheel_dir), DEMO], check=True)
    return path


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a hung index)."""

    def __init__(self):
        import socket
        import threading

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/simple"
        self._held: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:

        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
