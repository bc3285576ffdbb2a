import os

import pytest
from hypothesis import HealthCheck, settings

from safelight import _core

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@pytest.fixture(params=_core.available_isas())
def isa(request):
    """Run the test once per instruction-set path this CPU has, restoring the default after."""
    previous = _core.isa()
    _core.set_isa(request.param)
    try:
        yield request.param
    finally:
        _core.set_isa(previous)


@pytest.fixture(scope="session")
def cluster2():
    import safelight

    with safelight.Cluster.local(2, timeout=float(os.environ.get("SAFELIGHT_TEST_TIMEOUT", "10"))) as c:
        yield c


@pytest.fixture(scope="session")
def cluster3():
    import safelight

    with safelight.Cluster.local(3, timeout=10.0) as c:
        yield c
