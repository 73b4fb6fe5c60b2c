"""Remote packages through real servers on 127.0.0.1: HTTP (http.server), S3 (moto's server)
and Azure Blob (Azurite from npm). Downloads happen once; failures are SetupErrors naming the
URI; hostile zips are refused without writing outside the cache."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import types
import uuid
from pathlib import Path

import platformdirs
import pytest

from pkgtools import FileServer, listing, make_zip
from procs import run_in
from runtime_env import SetupError, parse, prepare
from runtime_env.locks import locked
from runtime_env.masking import mask
from runtime_env.remote_uris import missing_client
from wheels import make_wheel


@pytest.fixture
def served(tmp_path):
    folder = tmp_path / "www"
    folder.mkdir()
    with FileServer(folder) as server:
        yield server


def project_zip(path: Path, top: str | None = "example_dir", text: str = "remote hello") -> Path:
    prefix = f"{top}/" if top else ""
    return make_zip(path, {f"{prefix}hello.txt": text,
                           f"{prefix}remote_mod.py": "def where():\n    return 'remote'\n"})


# --- HTTP ---------------------------------------------------------------------------------
def test_http_zip_single_top_level_folder_is_the_working_dir(served):
    project_zip(served.folder / "wd.zip")
    env = parse({"working_dir": served.url("wd.zip")})
    assert env["working_dir"] == served.url("wd.zip")  # remote URIs stay as given
    ctx = prepare(env)
    assert listing(ctx.cwd) == {"hello.txt", "remote_mod.py"}
    out = run_in(ctx, "import remote_mod; print(open('hello.txt').read(), remote_mod.where())")
    assert out == "remote hello remote"


def test_http_zip_with_several_top_level_entries_is_used_whole(served):
    make_zip(served.folder / "wd.zip", {"a/x.txt": "x", "b/y.txt": "y"})
    ctx = prepare(parse({"working_dir": served.url("wd.zip")}))
    assert listing(ctx.cwd) == {"a/", "a/x.txt", "b/", "b/y.txt"}


def test_download_happens_once(served):
    project_zip(served.folder / "wd.zip")
    spec = {"working_dir": served.url("wd.zip")}
    first = prepare(parse(spec))
    second = prepare(parse(spec))
    assert first.cwd == second.cwd
    assert served.counts["/wd.zip"] == 1


def test_query_strings_are_allowed(served):
    project_zip(served.folder / "wd.zip")
    ctx = prepare(parse({"working_dir": served.url("wd.zip") + "?token=abc"}))
    assert "hello.txt" in listing(ctx.cwd)


def test_http_py_modules_zip_and_wheel(served):
    # Ray's rule: the contents of the single top-level folder go on sys.path.
    make_zip(served.folder / "deps.zip", {"deps/mr_rm_zip/__init__.py": "V = 'zip'\n"})
    make_wheel(served.folder, "mr_rm_whl", "1.0", "V = 'whl'")
    ctx = prepare(parse({"py_modules": [served.url("deps.zip"),
                                        served.url("mr_rm_whl-1.0-py3-none-any.whl")]}))
    assert run_in(ctx, "import mr_rm_zip, mr_rm_whl; print(mr_rm_zip.V, mr_rm_whl.V)") == "zip whl"


def test_http_404_is_a_setup_error_naming_the_uri(served, isolated_cache):
    uri = served.url("missing.zip")
    env = parse({"working_dir": uri})  # not fetched at the call site
    with pytest.raises(SetupError) as err:
        prepare(env)
    assert uri in str(err.value) and "404" in str(err.value)
    assert err.value.field == "working_dir"
    assert isolated_cache.entries("working_dir") == []


def test_refused_connection_is_a_setup_error(isolated_cache):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}/wd.zip"
    with pytest.raises(SetupError, match=re.escape(uri)):
        prepare(parse({"working_dir": uri}))


def test_passwords_in_uris_stay_out_of_messages(served):
    uri = served.url("missing.zip").replace("http://", "http://user:s3cret@")
    with pytest.raises(SetupError) as err:
        prepare(parse({"working_dir": uri}))
    assert "s3cret" not in str(err.value) and "user:***@" in str(err.value)
    assert mask("https://u:p@host:8443/x.zip") == "https://u:***@host:8443/x.zip"


def test_a_download_that_is_not_a_zip_is_a_setup_error(served):
    (served.folder / "page.zip").write_text("<html>not a zip</html>")
    with pytest.raises(SetupError, match="not a readable zip"):
        prepare(parse({"working_dir": served.url("page.zip")}))


@pytest.mark.parametrize("entries, links", [
    ({"d/ok.txt": "", "../escaped.txt": "evil"}, {}),
    ({"d/ok.txt": "", "ESCAPE_ABS": "evil"}, {}),
    ({"d/ok.txt": ""}, {"d/link": "../../escaped.txt"}),
    ({"d/ok.txt": ""}, {"d/link": "/tmp"}),
])
def test_unsafe_remote_zip_is_refused_and_writes_nothing_outside(served, tmp_path, entries,
                                                                links, isolated_cache):
    outside = tmp_path / "escaped.txt"
    entries = {(str(outside) if k == "ESCAPE_ABS" else k): v for k, v in entries.items()}
    make_zip(served.folder / "evil.zip", entries, symlinks=links)
    before = set(os.listdir(tmp_path))
    with pytest.raises(SetupError) as err:
        prepare(parse({"working_dir": served.url("evil.zip")}))
    assert served.url("evil.zip") in str(err.value)
    assert "outside" in str(err.value) or "absolute" in str(err.value)
    assert not outside.exists() and set(os.listdir(tmp_path)) == before
    field = isolated_cache.root / "working_dir"
    assert isolated_cache.entries("working_dir") == []
    assert [p.name for p in field.iterdir() if not p.name.endswith(".lock")] == []


# --- missing clients ------------------------------------------------------------------------
def test_a_missing_client_names_the_extra_to_install(tmp_path):
    code = (
        "import sys; sys.modules['boto3'] = None\n"
        "import runtime_env\n"
        "env = runtime_env.parse({'working_dir': 's3://bucket/wd.zip'})\n"
        "try:\n"
        "    runtime_env.prepare(env)\n"
        "except runtime_env.SetupError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "MINRAY_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60, check=True).stdout
    assert "s3://bucket/wd.zip" in out and "boto3" in out and 'pip install "minray[s3]"' in out


@pytest.mark.parametrize("scheme, module, install", [
    ("s3", "boto3", 'pip install "minray[s3]"'),
    ("gs", "google.cloud.storage", 'pip install "minray[gs]"'),
    ("azure", "azure.storage.blob", 'pip install "minray[azure]"'),
    ("https", "requests", "pip install requests"),
])
def test_missing_client_messages(monkeypatch, scheme, module, install):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: import fails
    msg = missing_client(scheme)
    assert msg is not None and f"'{module}'" in msg and msg.endswith(install)
    monkeypatch.setitem(sys.modules, module, types.ModuleType(module))  # as if installed
    assert missing_client(scheme) is None
    assert missing_client("file") is None  # file:// URIs need no client at all


# --- S3 through moto's server ----------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_endpoint():
    pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint, monkeypatch):
    import boto3

    aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": moto_endpoint}
    for var, value in aws.items():
        monkeypatch.setenv(var, value)
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    client = boto3.client("s3")
    bucket = f"minray-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def test_s3_working_dir_downloaded_once(s3_bucket, tmp_path):
    client, bucket = s3_bucket
    client.upload_file(str(project_zip(tmp_path / "wd.zip", text="from s3")), bucket, "wd.zip")
    spec = {"working_dir": f"s3://{bucket}/wd.zip"}
    ctx = prepare(parse(spec))
    assert run_in(ctx, "print(open('hello.txt').read())") == "from s3"
    client.delete_object(Bucket=bucket, Key="wd.zip")  # a second fetch would now fail
    assert prepare(parse(spec)).cwd == ctx.cwd


def test_s3_py_module(s3_bucket, tmp_path):
    client, bucket = s3_bucket
    z = make_zip(tmp_path / "m.zip", {"top/mr_s3_mod.py": "V = 's3 module'\n"})
    client.upload_file(str(z), bucket, "deps/m.zip")
    ctx = prepare(parse({"py_modules": [f"s3://{bucket}/deps/m.zip"]}))
    assert run_in(ctx, "import mr_s3_mod; print(mr_s3_mod.V)") == "s3 module"


def test_s3_missing_object_is_a_setup_error(s3_bucket):
    _, bucket = s3_bucket
    uri = f"s3://{bucket}/nope.zip"
    with pytest.raises(SetupError, match=re.escape(uri)):
        prepare(parse({"working_dir": uri}))


# --- Azure Blob through Azurite ----------------------------------------------------------------
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")  # Azurite's documented, public development key


def _azurite_bin() -> Path:
    """azurite-blob from npm, installed once into a per-user cache folder."""
    folder = Path(os.environ.get("MINRAY_TEST_AZURITE_DIR")
                  or Path(platformdirs.user_cache_dir("minray-tests")) / "azurite")
    binary = folder / "node_modules" / ".bin" / "azurite-blob"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("Azure tests need Azurite, and npm is not installed to install it")
    folder.mkdir(parents=True, exist_ok=True)
    with locked(str(folder) + ".lock"):
        if not binary.exists():
            _skip_unless_npm_registry_answers(npm)
            try:
                proc = subprocess.run([npm, "install", "--no-audit", "--no-fund",
                                       "--fetch-retries=1", "--prefix", str(folder), "azurite"],
                                      capture_output=True, text=True, timeout=300, check=False)
            except subprocess.TimeoutExpired:
                pytest.skip("Azure tests need Azurite from npm: npm install azurite took over "
                            "300 s")
            if proc.returncode != 0 or not binary.exists():
                pytest.skip(f"could not npm install azurite: {proc.stderr.strip()[-300:]}")
    return binary


def _skip_unless_npm_registry_answers(npm: str) -> None:
    """Skip within seconds, saying why, when the npm registry cannot be reached (npm itself
    would retry for minutes)."""
    try:
        ping = subprocess.run([npm, "ping", "--fetch-retries=0", "--fetch-timeout=10000"],
                              capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip("Azure tests need Azurite from the npm registry, which did not answer "
                    "within 30 s")
    if ping.returncode != 0:
        errors = [line for line in ping.stderr.splitlines() if "FetchError" in line]
        reason = errors[0].split("FetchError: ", 1)[1] if errors else f"exit {ping.returncode}"
        pytest.skip(f"Azure tests need Azurite from the npm registry, which cannot be reached "
                    f"({reason})")


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    pytest.importorskip("azure.storage.blob")
    binary = _azurite_bin()
    workspace = tmp_path_factory.mktemp("azurite")  # its cwd: Azurite writes nothing here
    proc = subprocess.Popen(
        [str(binary), "--inMemoryPersistence", "--blobHost", "127.0.0.1", "--blobPort", "0",
         "--skipApiVersionCheck", "--disableTelemetry", "--silent"], cwd=workspace,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    port, seen = None, []
    for line in proc.stdout:
        seen.append(line)
        m = re.search(r"listens on http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        proc.kill()
        proc.wait()
        pytest.fail("Azurite did not start:\n" + "".join(seen[-20:]))
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
    yield (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
           f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def azure_container(azurite, monkeypatch):
    from azure.storage.blob import BlobServiceClient

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    service = BlobServiceClient.from_connection_string(azurite)
    name = f"minray-{uuid.uuid4().hex[:12]}"
    return service.create_container(name), name


def test_azure_tests_skip_saying_why_when_the_npm_registry_is_unreachable(tmp_path):
    """Without the registry, the Azure tests skip within seconds with a readable reason (npm
    alone would retry for minutes)."""
    pytest.importorskip("azure.storage.blob")
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens here once the socket is closed
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", __file__,
         "-k", "downloaded_once and azure"], capture_output=True, text=True, timeout=180,
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "npm_config_registry": f"http://127.0.0.1:{closed}/",
             "MINRAY_TEST_AZURITE_DIR": str(tmp_path / "azurite")})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 skipped" in out.stdout
    assert "Azure tests need Azurite from the npm registry, which cannot be reached" in out.stdout


def test_azure_working_dir_downloaded_once(azure_container, tmp_path):
    container, name = azure_container
    with open(project_zip(tmp_path / "wd.zip", text="from azure"), "rb") as f:
        container.upload_blob("pkgs/wd.zip", f)
    spec = {"working_dir": f"azure://{name}/pkgs/wd.zip"}
    ctx = prepare(parse(spec))
    assert run_in(ctx, "print(open('hello.txt').read())") == "from azure"
    container.delete_blob("pkgs/wd.zip")
    assert prepare(parse(spec)).cwd == ctx.cwd


def test_azure_missing_blob_is_a_setup_error(azure_container):
    _, name = azure_container
    uri = f"azure://{name}/missing.zip"
    with pytest.raises(SetupError, match=re.escape(uri)):
        prepare(parse({"working_dir": uri}))


def test_azure_without_connection_string_is_a_setup_error(monkeypatch):
    pytest.importorskip("azure.storage.blob")
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    with pytest.raises(SetupError, match="AZURE_STORAGE_CONNECTION_STRING"):
        prepare(parse({"working_dir": "azure://container/wd.zip"}))


def test_file_uri_is_fetched_like_a_remote_package(tmp_path):
    z = project_zip(tmp_path / "shared" / "wd.zip", text="from file uri")
    uri = z.as_uri()
    ctx = prepare(parse({"working_dir": uri}))
    assert run_in(ctx, "print(open('hello.txt').read())") == "from file uri"
    z.unlink()  # fetched once: the cache keeps serving it
    assert prepare(parse({"working_dir": uri})).cwd == ctx.cwd
