"""``bessai check`` warns while the kernel does not consider the clock synchronized.

The status is the real kernel's; the test expects the warning exactly when
``kernel_clock_synchronized()`` (itself checked against C in tests/loop/test_clock.py)
reports False.
"""

from bessai_edge.clock import kernel_clock_synchronized
from tests.check.test_check import run_check
from tests.simulator.helpers import simulator  # noqa: F401 (fixture)

WARNING_EN = "the system clock is not synchronized by NTP"
WARNING_ES = "el reloj del sistema no está sincronizado por NTP"


def test_check_warns_while_the_clock_is_not_synchronized(simulator):  # noqa: F811
    device = simulator("--profile", "victron_multiplus")
    expected = kernel_clock_synchronized() is False
    result = run_check(port=device.port)
    assert (WARNING_EN in result.stderr) is expected, result.stderr
    spanish = run_check(port=device.port, LANG="es_CL.UTF-8")
    assert (WARNING_ES in spanish.stderr) is expected, spanish.stderr
