"""working_dir: local folders and zips, what a worker process sees, call-site validation."""

from __future__ import annotations

import os

import pytest

from pkgtools import listing, make_zip, prepared, working_dir_uri, write_tree
from procs import run_in
from runtime_env import RuntimeEnv, SetupError, parse, prepare
from runtime_env.plugins.working_dir import WorkingDirPlugin
from runtime_env.setup import Setup


@pytest.fixture
def project(tmp_path):
    return write_tree(tmp_path / "project", {
        "hello.txt": "Hello World!",
        "helper.py": "def greet():\n    return 'hi from helper'\n",
        "pkg/__init__.py": "NAME = 'pkg'\n",
    })


def test_worker_starts_in_its_copy_and_imports_from_it(project):
    ctx = prepared({"working_dir": str(project)})
    out = run_in(ctx, "import os, helper, pkg; print(open('hello.txt').read(), helper.greet(), "
                      "pkg.NAME, os.getcwd(), sep='|')")
    text, greeting, name, cwd = out.split("|")
    assert (text, greeting, name) == ("Hello World!", "hi from helper", "pkg")
    assert os.path.realpath(cwd) == os.path.realpath(ctx.cwd)
    assert os.path.realpath(ctx.cwd) != os.path.realpath(project)  # a copy in the cache
    assert ctx.python_path[0] == ctx.cwd


def test_a_worker_sees_the_package_even_after_the_source_changes(project):
    ctx = prepared({"working_dir": str(project)})
    (project / "hello.txt").write_text("edited later")
    assert run_in(ctx, "print(open('hello.txt').read())") == "Hello World!"


def test_relative_path_is_resolved_against_the_driver_cwd(project, monkeypatch):
    monkeypatch.chdir(project.parent)
    assert parse({"working_dir": "project"}) == parse({"working_dir": str(project)})
    monkeypatch.chdir(project)
    assert parse({"working_dir": "."})["working_dir"] == parse(
        {"working_dir": str(project)})["working_dir"]


def test_normalised_value_is_a_pure_value_that_validates_to_itself(project):
    env = parse({"working_dir": str(project)})
    value = env["working_dir"]
    assert value.startswith("minray-pkg://working_dir/")
    assert RuntimeEnv.deserialize(env.serialize()) == env
    assert parse(dict(env)) == env
    assert WorkingDirPlugin().validate(value, {}) == value


def test_pathlike_is_accepted(project):
    assert parse({"working_dir": project})["working_dir"].startswith("minray-pkg://")


@pytest.mark.parametrize("value, error", [
    (42, TypeError), (["a"], TypeError), ("", ValueError),
    ("/definitely/not/here", ValueError),
    ("minray-pkg://py_modules/" + "0" * 32, ValueError),  # another field's package
    ("minray-pkg://working_dir/nothex", ValueError),
    ("ftp://host/x.zip", ValueError),
    ("https://host/archive.tar.gz", ValueError),  # remote packages are zips
])
def test_bad_values_fail_at_the_call_site(value, error):
    with pytest.raises(error, match="working_dir"):
        parse({"working_dir": value})


def test_a_plain_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ValueError, match="folder or a .zip"):
        parse({"working_dir": str(tmp_path / "notes.txt")})


def test_create_exports_the_prepared_folder_for_later_fields(project, isolated_cache):
    value = parse({"working_dir": str(project)})["working_dir"]
    setup = Setup(cache=isolated_cache, log_path=None, deadline=None)
    path = WorkingDirPlugin().create(value, setup)
    assert setup.exports["MINRAY_RUNTIME_ENV_CREATE_WORKING_DIR"] == str(path)
    assert setup.exports["RAY_RUNTIME_ENV_CREATE_WORKING_DIR"] == str(path)
    assert (path / "hello.txt").read_text() == "Hello World!"


def test_a_package_removed_from_the_cache_is_a_setup_error(project, isolated_cache):
    env = parse({"working_dir": str(project)})
    key = env["working_dir"].rsplit("/", 1)[1]
    isolated_cache.remove("working_dir", key)
    with pytest.raises(SetupError, match="no longer in the cache"):
        prepare(env)
    again = prepare(parse({"working_dir": str(project)}))  # validating again re-packages
    assert open(os.path.join(again.cwd, "hello.txt")).read() == "Hello World!"


# --- local zips ----------------------------------------------------------------------------
def test_local_zip_with_one_top_level_folder_uses_that_folder(tmp_path):
    z = make_zip(tmp_path / "wd.zip", {"example_dir/": "", "example_dir/hello.txt": "zipped",
                                        "example_dir/sub/mod.py": "V = 5\n"})
    ctx = prepared({"working_dir": str(z)})
    assert listing(ctx.cwd) == {"hello.txt", "sub/", "sub/mod.py"}
    assert run_in(ctx, "from sub import mod; print(open('hello.txt').read(), mod.V)") == "zipped 5"


def test_local_zip_without_one_top_level_folder_is_used_whole(tmp_path):
    z = make_zip(tmp_path / "wd.zip", {"a/x.txt": "x", "b/y.txt": "y", "top.txt": "t"})
    assert listing(prepared({"working_dir": str(z)}).cwd) == {"a/", "a/x.txt", "b/", "b/y.txt",
                                                               "top.txt"}
    single_file = make_zip(tmp_path / "one.zip", {"only.txt": "o"})
    assert listing(prepared({"working_dir": str(single_file)}).cwd) == {"only.txt"}


def test_local_zip_is_keyed_by_its_bytes(tmp_path):
    z = make_zip(tmp_path / "wd.zip", {"d/f.txt": "one"})
    first = working_dir_uri({"working_dir": str(z)})
    assert working_dir_uri({"working_dir": str(z)}) == first
    make_zip(tmp_path / "wd.zip", {"d/f.txt": "two"})
    second = working_dir_uri({"working_dir": str(z)})
    assert second != first
    assert open(os.path.join(prepared({"working_dir": str(z)}).cwd, "f.txt")).read() == "two"


def test_excludes_do_not_apply_to_a_zip(tmp_path):
    z = make_zip(tmp_path / "wd.zip", {"d/keep.log": "log"})
    ctx = prepared({"working_dir": str(z), "excludes": ["*.log"]})
    assert listing(ctx.cwd) == {"keep.log"}


def test_a_broken_zip_fails_at_the_call_site(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"this is not a zip")
    with pytest.raises(ValueError, match="not a readable zip"):
        parse({"working_dir": str(tmp_path / "bad.zip")})


def test_a_zip_over_the_size_limit_fails_at_the_call_site(tmp_path, monkeypatch):
    monkeypatch.setenv("MINRAY_RUNTIME_ENV_WORKING_DIR_MAX_SIZE_MB", "1")
    z = make_zip(tmp_path / "big.zip", {"d/zeros.bin": b"\0" * (2 * 1024 * 1024)})
    with pytest.raises(ValueError, match="over the limit"):
        parse({"working_dir": str(z)})


@pytest.mark.parametrize("entries, links", [
    ({"ok.txt": "", "../escaped.txt": "evil"}, {}),
    ({"ok.txt": "", "d/../../escaped.txt": "evil"}, {}),
    ({"ok.txt": "", "ESCAPE_ABS": "evil"}, {}),
    ({"ok.txt": ""}, {"link": "../.."}),
    ({"ok.txt": ""}, {"link": "/etc"}),
    ({"ok.txt": "", "sub/x": "x"}, {"inner": "sub", "evil": "inner/../../.."}),
])
def test_unsafe_local_zip_is_refused_and_writes_nothing_outside(tmp_path, entries, links,
                                                               isolated_cache):
    outside = tmp_path / "escaped.txt"
    entries = {(str(outside) if k == "ESCAPE_ABS" else k): v for k, v in entries.items()}
    z = make_zip(tmp_path / "evil.zip", entries, symlinks=links)
    before = set(os.listdir(tmp_path))
    with pytest.raises(ValueError, match="outside|absolute"):
        parse({"working_dir": str(z)})
    assert not outside.exists()
    assert set(os.listdir(tmp_path)) == before
    assert isolated_cache.entries("working_dir") == []
    leftovers = [p for p in (isolated_cache.root / "working_dir").iterdir()
                 if p.is_dir() and not p.name.endswith(".leases")]
    assert leftovers == []


def test_a_symlink_inside_a_zip_that_stays_inside_is_kept(tmp_path):
    z = make_zip(tmp_path / "wd.zip", {"d/real.txt": "real"}, symlinks={"d/alias.txt": "real.txt"})
    ctx = prepared({"working_dir": str(z)})
    assert run_in(ctx, "print(open('alias.txt').read())") == "real"


def test_working_dir_comes_before_py_modules_on_the_path(project, tmp_path):
    mods = write_tree(tmp_path / "mods", {"helper.py": "def greet():\n    return 'module'\n"})
    ctx = prepared({"working_dir": str(project), "py_modules": [str(mods / "helper.py")]})
    assert run_in(ctx, "import helper; print(helper.greet())") == "hi from helper"
    assert ctx.python_path[0] == ctx.cwd and len(ctx.python_path) == 2

