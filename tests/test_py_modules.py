"""py_modules: package folders, single files, module objects and wheels, importable in workers."""

from __future__ import annotations

import importlib
import sys

import pytest

from pkgtools import listing, prepared, write_tree
from procs import run_in
from runtime_env import parse, prepare
from runtime_env.plugins.py_modules import PyModulesPlugin, module_source
from wheels import make_wheel


@pytest.fixture
def libs(tmp_path):
    return write_tree(tmp_path / "libs", {
        "mr_pm_pkg/__init__.py": "from .core import answer\n",
        "mr_pm_pkg/core.py": "def answer():\n    return 42\n",
        "mr_pm_pkg/data/table.csv": "a,b\n",
        "mr_pm_pkg/scratch.log": "debug\n",
        "mr_pm_single.py": "WHO = 'single'\n",
        "mr_pm_ns/part.py": "P = 'namespace'\n",
    })


@pytest.fixture
def importable(libs, monkeypatch):
    """The libs folder on the driver's sys.path, and the test modules forgotten afterwards."""
    monkeypatch.syspath_prepend(str(libs))
    yield
    for name in [m for m in sys.modules if m.startswith("mr_pm_")]:
        del sys.modules[name]


def test_package_folder_is_importable_under_its_own_name(libs):
    ctx = prepared({"py_modules": [str(libs / "mr_pm_pkg")]})
    assert run_in(ctx, "import mr_pm_pkg, mr_pm_pkg.core; print(mr_pm_pkg.answer())") == "42"
    (folder,) = ctx.python_path
    assert "mr_pm_pkg/data/table.csv" in listing(folder)
    assert ctx.cwd is None  # py_modules does not move the worker


def test_single_file_module(libs):
    ctx = prepared({"py_modules": [str(libs / "mr_pm_single.py")]})
    assert run_in(ctx, "import mr_pm_single; print(mr_pm_single.WHO)") == "single"


def test_module_objects_are_resolved_on_the_driver(libs, importable):
    pkg = importlib.import_module("mr_pm_pkg")
    single = importlib.import_module("mr_pm_single")
    env = parse({"py_modules": [pkg, single]})
    assert all(v.startswith("minray-pkg://py_modules/") for v in env["py_modules"])
    assert env == parse({"py_modules": [str(libs / "mr_pm_pkg"), str(libs / "mr_pm_single.py")]})
    ctx = prepare(env)
    assert run_in(ctx, "import mr_pm_pkg, mr_pm_single; "
                       "print(mr_pm_pkg.answer(), mr_pm_single.WHO)") == "42 single"


def test_a_submodule_object_ships_its_top_level_package(libs, importable):
    core = importlib.import_module("mr_pm_pkg.core")
    assert module_source(core) == str(libs / "mr_pm_pkg")


def test_a_namespace_package_ships_its_folder(libs, importable):
    ns = importlib.import_module("mr_pm_ns")
    ctx = prepared({"py_modules": [ns]})
    assert run_in(ctx, "from mr_pm_ns import part; print(part.P)") == "namespace"


def test_builtin_and_compiled_modules_are_refused():
    with pytest.raises(TypeError, match="'sys'"):
        parse({"py_modules": [sys]})


def test_local_wheel_is_unpacked_and_importable(tmp_path):
    whl = make_wheel(tmp_path, "mr_pm_whl", "1.0", "V = 'wheel'")
    ctx = prepared({"py_modules": [str(whl)]})
    out = run_in(ctx, "import mr_pm_whl, importlib.metadata as m; "
                      "print(mr_pm_whl.V, m.version('mr_pm_whl'))")
    assert out == "wheel 1.0"


def test_excludes_and_ignore_files_apply_inside_module_folders(libs):
    write_tree(libs, {"mr_pm_pkg/.gitignore": "data/\n"})
    ctx = prepared({"py_modules": [str(libs / "mr_pm_pkg")], "excludes": ["*.log"]})
    shipped = listing(ctx.python_path[0])
    assert "mr_pm_pkg/core.py" in shipped
    assert "mr_pm_pkg/scratch.log" not in shipped
    assert not any(p.startswith("mr_pm_pkg/data") for p in shipped)


def test_anchored_excludes_are_relative_to_the_module_folder(libs):
    ctx = prepared({"py_modules": [str(libs / "mr_pm_pkg")], "excludes": ["/core.py"]})
    assert "mr_pm_pkg/core.py" not in listing(ctx.python_path[0])


def test_a_module_change_gives_a_new_package(libs):
    spec = {"py_modules": [str(libs / "mr_pm_pkg")]}
    first = parse(spec)["py_modules"]
    assert parse(spec)["py_modules"] == first
    (libs / "mr_pm_pkg" / "core.py").write_text("def answer():\n    return 43\n")
    assert parse(spec)["py_modules"] != first
    assert run_in(prepared(spec), "import mr_pm_pkg; print(mr_pm_pkg.answer())") == "43"


def test_same_content_under_another_name_is_another_package(libs, tmp_path):
    import shutil

    shutil.copytree(libs / "mr_pm_pkg", tmp_path / "other_name")
    a = parse({"py_modules": [str(libs / "mr_pm_pkg")]})["py_modules"]
    b = parse({"py_modules": [str(tmp_path / "other_name")]})["py_modules"]
    assert a != b


def test_several_modules_with_a_working_dir(libs, tmp_path):
    wd = write_tree(tmp_path / "wd", {"main.py": "import mr_pm_pkg, mr_pm_single\n"
                                                 "print(mr_pm_pkg.answer(), mr_pm_single.WHO)\n"})
    ctx = prepared({"working_dir": str(wd),
                    "py_modules": [str(libs / "mr_pm_pkg"), str(libs / "mr_pm_single.py")]})
    assert len(ctx.python_path) == 3
    assert run_in(ctx, "import main") == "42 single"


def test_normalised_list_validates_to_itself(libs):
    value = parse({"py_modules": [str(libs / "mr_pm_pkg"), "https://example.com/m.whl"]})
    assert PyModulesPlugin().validate(value["py_modules"], {}) == value["py_modules"]


@pytest.mark.parametrize("value, error, match", [
    ("just/a/string", TypeError, "list"),
    ({"a": 1}, TypeError, "list"),
    ([42], TypeError, "str"),
    (["/definitely/not/here"], ValueError, "does not exist"),
    (["s3://bucket/module.tar.gz"], ValueError, r"\.zip or \.whl"),
    (["minray-pkg://working_dir/" + "0" * 32], ValueError, "not a package URI"),
])
def test_bad_values_fail_at_the_call_site(value, error, match):
    with pytest.raises(error, match=match):
        parse({"py_modules": value})


def test_a_file_of_another_kind_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(ValueError, match=r"\.py file"):
        parse({"py_modules": [str(tmp_path / "notes.txt")]})


def test_module_size_limit(libs, monkeypatch):
    monkeypatch.setenv("MINRAY_RUNTIME_ENV_PY_MODULES_MAX_SIZE_MB", "0.01")
    (libs / "mr_pm_pkg" / "weights.bin").write_bytes(b"\0" * 20_000)
    with pytest.raises(ValueError, match="MINRAY_RUNTIME_ENV_PY_MODULES_MAX_SIZE_MB") as err:
        parse({"py_modules": [str(libs / "mr_pm_pkg")]})
    assert "mr_pm_pkg/weights.bin" in str(err.value)
