"""Packaging local folders: excludes, ignore files, default excludes, symlinks, content hashes,
the digest memo and the size limit, seen through what a worker finds in its working_dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from pkgtools import listing, shipped_files, working_dir_uri, write_tree
from procs import wait_for
from runtime_env import Cache, parse, prepare
from runtime_env.packaging import DigestMemo


@pytest.fixture
def project(tmp_path):
    return write_tree(tmp_path / "project", {
        "main.py": "print('main')\n",
        "lib/util.py": "X = 1\n",
        "lib/deep/data.txt": "data\n",
        "notes.log": "log\n",
        "build/out.bin": b"\0\1",
        "lib/build/keep.txt": "kept\n",
    })


def test_default_excludes_leave_out_vcs_venvs_and_bytecode(project):
    write_tree(project, {
        ".git/HEAD": "ref: main\n",
        "sub/.git": "gitdir: ../.git/modules/sub\n",  # a submodule's .git is a file
        ".venv/bin/python": "",
        "venv/lib/site.py": "",
        "lib/__pycache__/util.cpython-311.pyc": b"\0",
        "sub/code.py": "",
        "venvironment.txt": "not a venv\n",
    })
    files = shipped_files({"working_dir": str(project)})
    assert "sub/code.py" in files and "venvironment.txt" in files and "main.py" in files
    assert not {f for f in files if f.startswith((".git", ".venv", "venv/"))}
    assert "sub/.git" not in files
    assert not any("__pycache__" in f for f in files)


def test_negation_in_excludes_ships_a_default_excluded_folder(project):
    write_tree(project, {"venv/lib/site.py": "V = 1\n", "venv/.gitignore": "*\n"})
    files = shipped_files({"working_dir": str(project), "excludes": ["!venv"]})
    # excludes beat every ignore file, even the `*` that virtualenv writes into its folder
    assert {"venv/lib/site.py", "venv/.gitignore"} <= files


def test_excludes_use_gitignore_semantics(project):
    files = shipped_files({"working_dir": str(project),
                           "excludes": ["*.log", "/build/", "lib/deep", "missing/"]})
    assert files == {"main.py", "lib/util.py", "lib/build/keep.txt"}


def test_unanchored_folder_pattern_matches_at_any_depth(project):
    files = shipped_files({"working_dir": str(project), "excludes": ["build/"]})
    assert "build/out.bin" not in files and "lib/build/keep.txt" not in files
    assert "lib/util.py" in files


def test_gitignore_files_apply_to_their_own_folder(project):
    write_tree(project, {
        ".gitignore": "*.log\n# a comment\n\n/top-only.txt\n",
        "top-only.txt": "", "lib/top-only.txt": "",
        "lib/.gitignore": "data.txt\n!keep.log\n",
        "lib/keep.log": "", "lib/drop.log": "",
        "data.txt": "root data is not under lib\n",
    })
    files = shipped_files({"working_dir": str(project)})
    assert "notes.log" not in files and "lib/drop.log" not in files
    assert "lib/keep.log" in files  # the nested file re-includes what its parent ignored
    assert "top-only.txt" not in files and "lib/top-only.txt" in files
    assert "lib/deep/data.txt" not in files and "data.txt" in files
    assert {".gitignore", "lib/.gitignore"} <= files  # the ignore files themselves ship


def test_excluded_folder_cannot_be_reincluded_from_inside(project):
    write_tree(project, {".gitignore": "lib/\n", "lib/.gitignore": "!util.py\n"})
    files = shipped_files({"working_dir": str(project)})
    assert not any(f.startswith("lib/") for f in files)


@pytest.mark.parametrize("var", ["MINRAY_RUNTIME_ENV_IGNORE_GITIGNORE",
                                 "RAY_RUNTIME_ENV_IGNORE_GITIGNORE"])
def test_gitignore_can_be_turned_off_but_minrayignore_stays(project, monkeypatch, var):
    write_tree(project, {".gitignore": "*.log\n", ".minrayignore": "build/\n"})
    monkeypatch.setenv(var, "1")
    files = shipped_files({"working_dir": str(project)})
    assert "notes.log" in files
    assert "build/out.bin" not in files and "lib/build/keep.txt" not in files


def test_minrayignore_beats_gitignore_in_the_same_folder(project):
    write_tree(project, {".gitignore": "*.log\n", ".minrayignore": "!notes.log\n"})
    assert "notes.log" in shipped_files({"working_dir": str(project)})


def test_rayignore_is_honoured_like_minrayignore(project, monkeypatch):
    """Ray reads .rayignore files: a project moving from Ray keeps its exclusions."""
    write_tree(project, {".rayignore": "*.log\n", "lib/.rayignore": "build/\n",
                         ".gitignore": "!notes.log\n"})
    for gitignore_off in ("0", "1"):  # .rayignore beats .gitignore, and applies without it
        monkeypatch.setenv("MINRAY_RUNTIME_ENV_IGNORE_GITIGNORE", gitignore_off)
        files = shipped_files({"working_dir": str(project)})
        assert "notes.log" not in files and "lib/build/keep.txt" not in files
        assert "lib/util.py" in files and "build/out.bin" in files


def test_symlinks_are_followed(project, tmp_path):
    outside = write_tree(tmp_path / "outside", {"shared.py": "S = 2\n", "pkg/mod.py": "M = 3\n"})
    os.symlink(outside / "shared.py", project / "shared.py")
    os.symlink(outside / "pkg", project / "linked_pkg")
    os.symlink(project, project / "lib" / "loop")  # a cycle must not hang the walk
    os.symlink(tmp_path / "nowhere", project / "dangling")
    ctx = prepare(parse({"working_dir": str(project)}))
    files = listing(ctx.cwd)
    assert {"shared.py", "linked_pkg/mod.py"} <= files
    assert not any(f.startswith("lib/loop/") for f in files) and "dangling" not in files
    assert not os.path.islink(os.path.join(ctx.cwd, "shared.py"))  # a copy, not a link


def test_content_hash_follows_included_files_only(project):
    spec = {"working_dir": str(project), "excludes": ["*.log"]}
    first = working_dir_uri(spec)
    assert working_dir_uri(spec) == first
    (project / "notes.log").write_text("changed, but excluded\n")
    assert working_dir_uri(spec) == first
    (project / "lib" / "util.py").write_text("X = 2\n")
    second = working_dir_uri(spec)
    assert second != first
    (project / "lib" / "new.py").write_text("")
    assert working_dir_uri(spec) != second


def test_hidden_files_excluded_by_dot_star_do_not_freeze_the_package(project):
    """Ray once reused a stale package when `excludes` held `.*`."""
    write_tree(project, {".env": "SECRET=1\n", ".config/x.toml": ""})
    spec = {"working_dir": str(project), "excludes": [".*"]}
    first = working_dir_uri(spec)
    assert ".env" not in shipped_files(spec)
    (project / ".env").write_text("SECRET=2\n")
    assert working_dir_uri(spec) == first
    (project / "main.py").write_text("print('changed')\n")
    changed = working_dir_uri(spec)
    assert changed != first
    assert open(os.path.join(prepare(parse(spec)).cwd, "main.py")).read() == "print('changed')\n"


def test_excludes_that_change_nothing_give_the_same_package(project):
    plain = working_dir_uri({"working_dir": str(project)})
    assert working_dir_uri({"working_dir": str(project), "excludes": ["*.nothing"]}) == plain
    assert working_dir_uri({"working_dir": str(project), "excludes": ["*.log"]}) != plain


def test_executable_bit_is_part_of_the_package(project):
    script = project / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    first = working_dir_uri({"working_dir": str(project)})
    script.chmod(0o755)
    spec = {"working_dir": str(project)}
    assert working_dir_uri(spec) != first
    assert os.access(os.path.join(prepare(parse(spec)).cwd, "run.sh"), os.X_OK)


def test_empty_folders_are_kept(project):
    (project / "empty" / "inner").mkdir(parents=True)
    ctx = prepare(parse({"working_dir": str(project)}))
    assert os.path.isdir(os.path.join(ctx.cwd, "empty", "inner"))


def test_an_unchanged_tree_is_not_copied_again(project):
    ctx1 = prepare(parse({"working_dir": str(project)}))
    inode = os.stat(os.path.join(ctx1.cwd, "main.py")).st_ino
    ctx2 = prepare(parse({"working_dir": str(project)}))
    assert ctx2.cwd == ctx1.cwd
    assert os.stat(os.path.join(ctx2.cwd, "main.py")).st_ino == inode


def test_memo_is_persisted_and_never_trusts_a_same_mtime_rewrite(project, isolated_cache):
    def stamp(path):
        st = path.stat()
        return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev

    files = [p for p in project.rglob("*") if p.is_file()]
    wait_for(lambda: all(DigestMemo.trusted(stamp(p), time.time_ns()) for p in files),
             "the files to age past the memo's timestamp margin", timeout=10)
    first = working_dir_uri({"working_dir": str(project)})
    memo = DigestMemo(isolated_cache.root, str(project))
    data = json.loads(memo.path.read_text())
    assert {"main.py", "lib/util.py", "lib/deep/data.txt"} <= set(data)
    # Same size, same mtime (restored), new content: the inode's ctime tells.
    target = project / "main.py"
    st = target.stat()
    target.write_text("print('MAIN')\n")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    assert working_dir_uri({"working_dir": str(project)}) != first


def test_the_same_package_is_shared_by_different_source_folders(project, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    assert working_dir_uri({"working_dir": str(copy)}) == working_dir_uri(
        {"working_dir": str(project)})


def test_size_limit_names_the_largest_files_and_suggests_excludes(project, monkeypatch):
    monkeypatch.setenv("MINRAY_RUNTIME_ENV_WORKING_DIR_MAX_SIZE_MB", "1")
    (project / "model.ckpt").write_bytes(b"\0" * (900 * 1024))
    (project / "lib" / "big.bin").write_bytes(b"\0" * (600 * 1024))
    with pytest.raises(ValueError) as err:
        parse({"working_dir": str(project)})
    msg = str(err.value)
    assert "model.ckpt" in msg and "lib/big.bin" in msg and "excludes" in msg
    assert "MINRAY_RUNTIME_ENV_WORKING_DIR_MAX_SIZE_MB" in msg
    assert msg.index("model.ckpt") < msg.index("lib/big.bin")  # largest first
    parse({"working_dir": str(project), "excludes": ["*.ckpt"]})  # fits once excluded


def test_default_size_limit_is_500_mib(monkeypatch):
    from runtime_env.packaging import max_size_bytes

    monkeypatch.delenv("MINRAY_RUNTIME_ENV_WORKING_DIR_MAX_SIZE_MB", raising=False)
    assert max_size_bytes("working_dir") == 500 * 1024 * 1024
    monkeypatch.setenv("MINRAY_RUNTIME_ENV_PY_MODULES_MAX_SIZE_MB", "0.5")
    assert max_size_bytes("py_modules") == 512 * 1024


def test_packages_live_in_the_cache_and_are_leased(project, isolated_cache):
    uri = working_dir_uri({"working_dir": str(project)})
    key = uri.rsplit("/", 1)[1]
    (entry,) = [e for e in Cache(isolated_cache.root).entries("working_dir") if e.key == key]
    assert os.getpid() in entry.leased_by
    assert entry.meta["source"] == str(project)


# A driver that packages a folder and leaves a mark for each step of the cache it takes:
# `racing-<pid>` when it found no package and goes to build one (or wait for its builder),
# `built-<pid>` when it runs the build itself. The build waits until every driver is racing,
# so the drivers really do want the same entry at the same time.
RACER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    import runtime_env
    from runtime_env.cache import Cache

    project, marks, racers = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    get_or_create = Cache.get_or_create

    def marked_get_or_create(self, field, key, build, **kwargs):
        (marks / f"racing-{os.getpid()}").touch()

        def marked_build(path):
            (marks / f"built-{os.getpid()}").touch()
            deadline = time.monotonic() + 60
            while len(list(marks.glob("racing-*"))) < racers:
                if time.monotonic() > deadline:
                    sys.exit("the other drivers never came to build the package")
                time.sleep(0.01)
            build(path)

        return get_or_create(self, field, key, marked_build, **kwargs)

    Cache.get_or_create = marked_get_or_create
    print(runtime_env.parse({"working_dir": project})["working_dir"])
""")


def test_concurrent_drivers_build_one_package(project, tmp_path, isolated_cache):
    marks = tmp_path / "marks"
    marks.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(project), str(marks), "3"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    (uri,) = {out.strip() for out, _ in outs}
    racing = sorted(m.name for m in marks.glob("racing-*"))
    assert racing == sorted(f"racing-{p.pid}" for p in procs)  # all three wanted to build it
    assert len(list(marks.glob("built-*"))) == 1  # one did; the others waited and used its work
    (entry,) = isolated_cache.entries("working_dir")
    assert entry.key == uri.rsplit("/", 1)[1]
    assert {f for f in listing(entry.path) if not f.endswith("/")} == {
        "main.py", "lib/util.py", "lib/deep/data.txt", "notes.log", "build/out.bin",
        "lib/build/keep.txt"}
