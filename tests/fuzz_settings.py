"""Shared settings of the fuzz tests (test_fuzz_kernels.py, test_fuzz_configs.py).

CI runs a small, fixed set of examples per test: hypothesis is derandomized (the same
examples on every run), has no deadline (a loaded CI machine is no bug) and keeps no example
database. (Hypothesis >= 6.1xx still caches source constants in .hypothesis/constants, which
.gitignore covers; HYPOTHESIS_STORAGE_DIRECTORY moves it.) Two environment variables:

    STN_FUZZ_EXAMPLES=2000   examples per hypothesis test, and mutations per example config
                             in the deterministic loops, instead of the CI counts;
    STN_FUZZ_REPORT=path     after each test that counted examples with tick(), append one
                             JSON line {test name: examples run} to `path`.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, settings


def _examples_from_environment():
    text = os.environ.get("STN_FUZZ_EXAMPLES", "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"STN_FUZZ_EXAMPLES must be a positive integer, got {text!r}")
    return int(text)


EXAMPLES = _examples_from_environment()

settings.register_profile(
    "stn-fuzz",
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)


def examples(ci_count: int) -> int:
    """How many examples (or mutations) a test runs: STN_FUZZ_EXAMPLES, else ci_count."""
    return EXAMPLES or ci_count


def fuzz_settings(ci_examples: int) -> settings:
    """The stn-fuzz profile with max_examples = examples(ci_examples). Used as a decorator,
    so loading no profile globally: other hypothesis tests keep their own settings."""
    return settings(settings.get_profile("stn-fuzz"), max_examples=examples(ci_examples))


_counts: dict = {}
_current = [""]


def tick(count: int = 1) -> None:
    """Counts `count` examples for the running test."""
    _counts[_current[0]] = _counts.get(_current[0], 0) + count


@pytest.fixture(autouse=True)
def report_examples(request):
    """Resets the running test's count; afterwards appends it to $STN_FUZZ_REPORT, if set.
    (Import it into a test module to use it there. Hypothesis only objects to
    function-scoped fixtures that a test takes as arguments, which this one is not.)"""
    name = request.node.name
    _current[0] = name
    _counts[name] = 0
    yield
    path = os.environ.get("STN_FUZZ_REPORT")
    if path and _counts[name]:  # tests that never tick are no fuzz tests
        with open(path, "a", encoding="utf-8") as report:
            report.write(json.dumps({name: _counts[name]}) + "\n")
