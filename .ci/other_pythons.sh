#!/usr/bin/env bash
# The fast part of the suite on the oldest and newest supported Pythons (pyproject's
# classifiers), each in a venv of its own, when the machine has them; the whole suite runs
# on the main interpreter in .ci/run. Skips a version the machine lacks, saying so.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=$(python -c "import uv; print(uv.find_uv_bin())")
FAST_TESTS=(tests/test_runtime_env_spec.py tests/test_ray_compat.py tests/test_tasks.py
            tests/test_actors.py tests/test_objects.py tests/test_error_types.py
            tests/test_packaging.py tests/test_pip.py tests/test_cli_env.py
            tests/test_script_functions.py tests/test_large_values.py tests/test_named_tuple.py)
for version in 3.10 3.13; do
    python=""
    for candidate in "python$version" /root/.pyenv/versions/"$version".*/bin/python; do
        if "$candidate" -c pass 2>/dev/null; then python=$candidate; break; fi
    done  # (a pyenv shim exists for every version but runs only the selected ones)
    if [ -z "$python" ]; then
        echo "ci: Python $version is not on this machine; its tests are skipped"
        continue
    fi
    venv="${TMPDIR:-/tmp}/minray-ci-py$version"
    rm -rf "$venv"
    # uv (a dependency of minray, installed by .ci/run's first step) installs in seconds
    # what pip resolves in minutes.
    "$UV" venv --quiet --python "$python" "$venv"
    "$UV" pip install --quiet --python "$venv/bin/python" -e ".[test]"
    echo "ci: the fast tests on $("$venv/bin/python" --version)"
    "$venv/bin/python" -m pytest -n 2 -q -p no:cacheprovider "${FAST_TESTS[@]}"
done
