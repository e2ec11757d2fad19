import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Property tests: a fixed budget keeps the suite's time predictable on a 2-core machine.
settings.register_profile(
    "ci", max_examples=int(os.environ.get("TT_HYPOTHESIS_EXAMPLES", "25")), deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
