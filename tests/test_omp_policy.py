"""stn/omp_policy.py: the OpenMP waiting policy stn sets before its core loads, where the
user set none, and leaves at the runtime's defaults for the benchmark commands (their peer,
torch, shares the runtime).

    PYTHONPATH=python python -m pytest tests/test_omp_policy.py -q
"""

import os
import subprocess
import sys

import pytest

from stn import omp_policy

PYTHON = "/usr/bin/python3"  # only argv[0]: never run


@pytest.mark.parametrize("argv, benchmark", [
    ([PYTHON, "-m", "stn", "bench", "--quick"], True),
    ([PYTHON, "-X", "dev", "-u", "-m", "stn", "bench"], True),
    ([PYTHON, "-m", "stn.bench_train", "--iterations", "3"], True),
    ([PYTHON, "/venv/bin/stn", "bench", "--json", "b.json"], True),
    ([PYTHON, "-m", "stn", "demo"], False),
    ([PYTHON, "-m", "stn"], False),
    ([PYTHON, "/venv/bin/stn", "train", "-solver", "s.prototxt"], False),
    ([PYTHON, "-m", "pytest", "-m", "stn", "bench"], False),   # pytest's own -m
    ([PYTHON, "train.py", "-m", "stn", "bench"], False),       # a script's arguments
    ([PYTHON, "-W", "ignore", "bench.py"], False),
    ([PYTHON, "-c", "import stn", "-m", "stn.bench"], False),
    ([PYTHON], False),
])
def test_benchmark_commands_are_recognised(argv, benchmark):
    assert omp_policy.runs_benchmark(argv) is benchmark


def test_policy_is_set_only_where_the_user_set_none():
    library = [PYTHON, "train.py"]
    environ = {}
    assert omp_policy.choose(environ, library) == omp_policy.POLICY
    assert environ == omp_policy.POLICY and environ["OMP_WAIT_POLICY"] == "PASSIVE"

    for users in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "0"}):
        environ = dict(users)
        assert omp_policy.choose(environ, library) == {}
        assert environ == users, "the user's choice stands, and nothing is added to it"

    environ = {}
    assert omp_policy.choose(environ, [PYTHON, "-m", "stn", "bench"]) == {}
    assert environ == {}
    assert omp_policy.in_effect(environ) == {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None}


def test_importing_stn_sets_the_policy_before_the_core_loads():
    environ = {name: value for name, value in os.environ.items() if name not in omp_policy.POLICY}
    code = "import os, stn; print(os.environ['OMP_WAIT_POLICY'], os.environ['GOMP_SPINCOUNT'])"
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["PASSIVE", "10000"]
