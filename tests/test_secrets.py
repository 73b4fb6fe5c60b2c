"""A password in an index URL never reaches what minray writes: the setup log, the driver's
stderr, RuntimeEnvSetupError, cache metadata, `minray env` output. Installs go to a real index
on 127.0.0.1 that wants basic auth, from real driver processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from auth_index import AuthIndex
from runtime_env import parse
from runtime_env.masking import mask
from wheels import make_wheel

USER, TOKEN, WRONG = "alice", "tok3n-S3CR3T-xyz", "wr0ng-T0KEN-abc"
PKG = "mr_secret_pkg"

DRIVER = textwrap.dedent("""
    import json, sys
    import minray
    print("SESSION", minray.init(num_cpus=1)["session_dir"], flush=True)

    @minray.remote
    def value():
        import mr_secret_pkg
        return mr_secret_pkg.VALUE

    try:
        env = json.loads(sys.argv[1])
        print("VALUE", minray.get(value.options(runtime_env=env).remote(), timeout=120))
    except Exception as e:
        print("ERROR", type(e).__name__, e)
""")


@pytest.fixture
def index(tmp_path):
    make_wheel(tmp_path / "wheels", PKG, "1.0", "VALUE = 7")
    with AuthIndex(tmp_path / "wheels", USER, TOKEN) as idx:
        yield idx


class Run:
    """What one driver process printed, and the setup log of its session."""

    def __init__(self, proc: subprocess.CompletedProcess):
        self.stdout, self.stderr = proc.stdout, proc.stderr
        session = next(line.split(" ", 1)[1] for line in self.stdout.splitlines()
                       if line.startswith("SESSION "))
        logs = list((Path(session) / "logs").glob("runtime_env_setup-*.log"))
        self.setup_log = "".join(p.read_text() for p in logs)


def run_driver(tmp_path, spec: dict, **env) -> Run:
    # Installer caches of their own, so a wrong token is never answered from an earlier run;
    # sessions of their own, so no other test's driver prunes this one's.
    env = {"MINRAY_RUNTIME_ENV_LOG_TO_DRIVER_ENABLED": "1", "PIP_NO_CACHE_DIR": "1",
           "UV_CACHE_DIR": str(tmp_path / "uv-cache"), "MINRAY_TMPDIR": str(tmp_path), **env}
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(spec)], capture_output=True,
                          text=True, timeout=180, env={**os.environ, **env})
    return Run(proc)


def minray_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minray.cli", *args], capture_output=True,
                          text=True, timeout=180)


# Where a user may put the URL: (spec, extra environment, does minray's own text name the URL)
PLACES = {
    "pip list, an --index-url line": (
        lambda url, tmp: {"pip": [f"--index-url {url}", PKG]}, {}, True),
    "pip_install_options, -i": (
        lambda url, tmp: {"pip": {"packages": [PKG], "pip_install_options": ["-i", url]}},
        {}, True),
    "uv_pip_install_options, --extra-index-url": (
        lambda url, tmp: {"uv": {"packages": [PKG],
                                 "uv_pip_install_options": ["--extra-index-url", url]}},
        {}, True),
    "a requirements file, --find-links": (
        lambda url, tmp: {"pip": _requirements(tmp, f"--no-index\n--find-links {url}/{PKG}/\n"
                                                    f"{PKG}\n")}, {}, True),
    "UV_INDEX_URL in the environment": (
        lambda url, tmp: {"pip": [PKG]}, {"UV_INDEX_URL": "{url}"}, False),
    "PIP_INDEX_URL in the environment, real pip": (
        lambda url, tmp: {"pip": [PKG]},
        {"PIP_INDEX_URL": "{url}", "MINRAY_PIP_INSTALLER": "pip"}, False),
}


def _requirements(folder: Path, text: str) -> str:
    path = folder / "requirements.txt"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("place", list(PLACES))
def test_an_install_from_a_password_protected_index_never_writes_the_password(
        place, index, tmp_path, isolated_cache):
    make_spec, env, names_url = PLACES[place]
    url = index.url()
    spec = make_spec(url, tmp_path)
    run = run_driver(tmp_path, spec, **{k: v.format(url=url) for k, v in env.items()})

    assert "VALUE 7" in run.stdout, run.stdout + run.stderr
    assert "(runtime_env)" in run.stderr and run.setup_log  # both were written to
    listing = minray_cli("env", "list")
    explained = minray_cli("env", "explain", json.dumps(spec))
    manifests = "".join(p.read_text() for p in isolated_cache.root.glob("*/*.json"))
    for text in (run.stdout, run.stderr, run.setup_log, listing.stdout, explained.stdout,
                 explained.stderr, manifests):
        assert TOKEN not in text
    if names_url:  # masked, not dropped: the user still sees which index was used
        masked = f"{USER}:***@127.0.0.1:{index.port}"
        assert masked in run.setup_log and masked in run.stderr and masked in explained.stdout


@pytest.mark.parametrize("token, package", [(WRONG, PKG), (TOKEN, "mr_no_such_pkg")],
                         ids=["wrong token", "wrong package name"])
def test_a_failed_install_shows_the_masked_index_url_and_never_the_password(
        token, package, index, tmp_path):
    url = index.url(password=token)
    spec = {"pip": {"packages": [package], "pip_install_options": ["--index-url", url]}}
    run = run_driver(tmp_path, spec)
    built = minray_cli("env", "build", json.dumps(spec))

    error = run.stdout.split("ERROR ", 1)[-1]
    assert run.stdout.count("ERROR RuntimeEnvSetupError") == 1, run.stdout + run.stderr
    assert built.returncode == 1 and "setup failed" in built.stderr
    masked = f"{USER}:***@127.0.0.1:{index.port}/simple"
    for text in (error, run.stderr, run.setup_log, built.stderr):
        assert token not in text and masked in text


@pytest.mark.parametrize("text, expected", [
    ("--index-url https://user:tok@host/simple", "--index-url https://user:***@host/simple"),
    ("https://u:p@host:8443/x.zip", "https://u:***@host:8443/x.zip"),
    ("git+https://ghp_TOKEN@github.com/o/r@v1", "git+https://***@github.com/o/r@v1"),
    ("http://u:p@ss@host/x", "http://u:***@host/x"),  # an unencoded @ in the password
    ("['-i', 'http://a:b@h/s', 'x@y']", "['-i', 'http://a:***@h/s', 'x@y']"),
    ("uv says `http://a:b@127.0.0.1:1/simple`", "uv says `http://a:***@127.0.0.1:1/simple`"),
    ("pkg @ file:///tmp/x.whl", "pkg @ file:///tmp/x.whl"),
    ("git+https://github.com/o/r@v1.0#egg=r", "git+https://github.com/o/r@v1.0#egg=r"),
    ("mail a@b.c", "mail a@b.c"),
])
def test_mask_hides_the_password_of_every_url_and_nothing_else(text, expected):
    assert mask(text) == expected
    assert mask(expected) == expected  # masking twice changes nothing


def test_a_call_site_error_about_a_url_masks_its_password():
    with pytest.raises(ValueError) as err:
        parse({"working_dir": f"https://{USER}:{TOKEN}@example.com/project.tar.gz"})
    assert TOKEN not in str(err.value) and f"{USER}:***@example.com" in str(err.value)
