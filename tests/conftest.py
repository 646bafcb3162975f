"""Shared pytest configuration: a deterministic torch seed and a bounded hypothesis profile for 2-core CI."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# With --doctest-modules this plugin would also be collected as a module of examples, and imported a second
# time under the name `conftest` that src/conftest.py already holds.
collect_ignore = ["conftest.py"]

settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile(
    "dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield
