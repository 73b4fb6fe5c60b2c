"""Files as a minray user meets them: working_dir and py_modules for jobs, tasks and actors,
excludes, remote zips, and pip installing from the working_dir."""

import os
import sys

import pytest

import minray
from minray.exceptions import RuntimeEnvSetupError
from pkgtools import FileServer, make_zip, write_tree
from wheels import make_wheel


@pytest.fixture
def project(tmp_path):
    return write_tree(tmp_path / "project", {
        "hello.txt": "Hello World!",
        "helper.py": "def greet():\n    return 'hi from helper'\n",
        "secret.log": "not for workers",
        ".gitignore": "*.log\n",
    })


@minray.remote
def look():
    import helper

    return open("hello.txt").read(), helper.greet(), os.path.exists("secret.log")


@minray.remote
def nested_look():
    return minray.get(look.remote())


def test_job_working_dir_reaches_tasks_nested_tasks_and_actors(project):
    minray.init(num_cpus=2, runtime_env={"working_dir": str(project)})

    @minray.remote
    class Reader:
        def read(self):
            return open("hello.txt").read(), os.getcwd()

    expected = ("Hello World!", "hi from helper", False)  # .gitignore'd file not shipped
    assert minray.get(look.remote()) == expected
    assert minray.get(nested_look.remote()) == expected
    text, cwd = minray.get(Reader.remote().read.remote())
    assert text == "Hello World!" and cwd != str(project)  # workers run in their own copy


def test_working_dir_per_task_and_per_actor(ray, tmp_path):
    one = write_tree(tmp_path / "one", {"hello.txt": "one", "helper.py": "def greet(): return 1"})
    two = write_tree(tmp_path / "two", {"hello.txt": "two", "helper.py": "def greet(): return 2"})

    @ray.remote
    class Reader:
        def read(self):
            return open("hello.txt").read()

    assert ray.get(look.options(runtime_env={"working_dir": str(one)}).remote())[:2] == ("one", 1)
    assert ray.get(look.options(runtime_env={"working_dir": str(two)}).remote())[:2] == ("two", 2)
    actor = Reader.options(runtime_env={"working_dir": str(two)}).remote()
    assert ray.get(actor.read.remote()) == "two"


def test_excludes_and_a_changed_file_gives_a_new_package(ray, project):
    env = {"working_dir": str(project), "excludes": ["helper.py"]}
    with pytest.raises(minray.exceptions.RayTaskError, match="No module named 'helper'"):
        ray.get(look.options(runtime_env=env).remote())
    (project / "hello.txt").write_text("changed")
    assert ray.get(look.options(runtime_env={"working_dir": str(project)}).remote())[0] == "changed"


def test_py_modules_by_folder_file_and_module_object(ray, tmp_path):
    write_tree(tmp_path / "mods", {"shipped_pkg/__init__.py": "WHO = 'package'\n",
                                   "single.py": "WHO = 'file'\n"})
    sys.path.insert(0, str(tmp_path / "mods"))
    try:
        import shipped_pkg
    finally:
        sys.path.remove(str(tmp_path / "mods"))

    @ray.remote
    def who():
        import shipped_pkg
        import single

        return shipped_pkg.WHO, single.WHO

    env = {"py_modules": [shipped_pkg, str(tmp_path / "mods" / "single.py")]}
    assert ray.get(who.options(runtime_env=env).remote()) == ("package", "file")


def test_a_missing_local_path_fails_at_the_call_site(ray, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        look.options(runtime_env={"working_dir": str(tmp_path / "nope")})
    with pytest.raises(ValueError, match="does not exist"):
        ray.remote(runtime_env={"py_modules": [str(tmp_path / "nope")]})(lambda: 1)


def test_remote_zip_working_dir_and_a_failing_download(ray, tmp_path):
    served = tmp_path / "served"
    make_zip(served / "code.zip", {"top/hello.txt": "from http", "top/helper.py":
                                   "def greet(): return 'remote'"})
    with FileServer(served) as server:
        env = {"working_dir": server.url("code.zip")}
        assert ray.get(look.options(runtime_env=env).remote())[:2] == ("from http", "remote")
        missing = server.url("missing.zip")
        with pytest.raises(RuntimeEnvSetupError, match="missing.zip"):
            ray.get(look.options(runtime_env={"working_dir": missing}).remote(), timeout=60)


def test_pip_installs_from_the_prepared_working_dir(ray, project):
    make_wheel(project / "wheels", "mr_wd_pkg", "1.0", "VALUE = 'from the working_dir'")
    (project / "more.txt").write_text("mr_wd_pkg\n")
    env = {"working_dir": str(project),
           "pip": ["--no-index", "--find-links",
                   "${MINRAY_RUNTIME_ENV_CREATE_WORKING_DIR}/wheels",
                   "-r ${MINRAY_RUNTIME_ENV_CREATE_WORKING_DIR}/more.txt"]}

    @ray.remote
    def value():
        import mr_wd_pkg

        return mr_wd_pkg.VALUE

    assert ray.get(value.options(runtime_env=env).remote(), timeout=120) == "from the working_dir"
