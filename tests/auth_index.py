"""Package indexes on 127.0.0.1. `AuthIndex` wants a password: a PEP 503 simple index of local
wheels, behind HTTP basic auth, so tests can watch what happens to credentials in index URLs;
it can also hold every request unanswered until the test releases it (an index that hangs).
`GatedIndex` is a find-links page whose answers wait for the test: an install that takes as
long as the test wants, with no timing guessed."""

from __future__ import annotations

import base64
import html
import http.server
import re
import threading
from pathlib import Path


class AuthIndex:
    """Serves `/simple/<project>/` and the wheels in `folder` to `user:password`; anyone else
    gets 401. `url(user, password)` is the index URL with those credentials in it. While
    `held()`, requests wait unanswered (`waiting` counts them) until `release()`."""

    def __init__(self, folder: str | Path, user: str, password: str):
        self.folder = Path(folder)
        self.user, self.password = user, password
        self.waiting = 0
        self._open = threading.Event()
        self._open.set()
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the name http.server calls
                self._answer(send_body=True)

            def do_HEAD(self):  # noqa: N802 - uv asks before it downloads a wheel
                self._answer(send_body=False)

            def _answer(self, send_body: bool) -> None:
                if not index._open.is_set():
                    index.waiting += 1
                    index._open.wait()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="test index"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, kind = index._page(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

            def log_message(self, *args):  # quiet
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, user: str | None = None, password: str | None = None) -> str:
        user = self.user if user is None else user
        password = self.password if password is None else password
        return f"http://{user}:{password}@127.0.0.1:{self.port}/simple"

    def held(self) -> AuthIndex:
        self._open.clear()
        return self

    def release(self) -> None:
        self._open.set()

    def _page(self, path: str) -> tuple[bytes | None, str]:
        path = path.split("?", 1)[0]
        if path.startswith("/files/"):
            wheel = self.folder / path[len("/files/"):]
            if wheel.is_file() and wheel.parent == self.folder:
                return wheel.read_bytes(), "application/octet-stream"
            return None, ""
        m = re.fullmatch(r"/simple/([^/]+)/?", path)
        if not m:
            return None, ""
        project = _normalise(m.group(1))
        links = [f'<a href="/files/{html.escape(w.name)}">{html.escape(w.name)}</a>'
                 for w in sorted(self.folder.glob("*.whl"))
                 if _normalise(w.name.split("-")[0]) == project]
        if not links:
            return None, ""
        return ("<html><body>" + "\n".join(links) + "</body></html>").encode(), "text/html"

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class GatedIndex:
    """A find-links page and its wheels on 127.0.0.1, held back until the test opens the gate;
    counts the requests it received."""

    def __init__(self, folder: Path):
        gate, counter = threading.Event(), []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self):  # noqa: N802 - http.server's name
                counter.append(self.path)
                if gate.wait(60):
                    super().do_GET()

            def log_message(self, *args):
                pass

        self.gate, self.requests = gate, counter
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self):
        self.gate.set()
        self._server.shutdown()
        self._server.server_close()
