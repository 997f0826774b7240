"""``bessai run`` against a device that closes the connection at one request of the plan.

Some devices close the connection instead of replying to a request they cannot serve.
``bessai simulate --disconnect-at`` does that for reads touching an address, over real
Modbus TCP on loopback.
"""

from bessai_edge.profile import load_profile
from tests.loop.conftest import gateway_env, run_gateway, simulator

PROFILE = "sma_sunny_tripower"  # no quiet time after connect: a reconnect costs nothing


def fields_by_block(plan):
    """Return {request block: canonical fields its points feed}."""
    blocks = {}
    for point in plan.points:
        if point.field:
            blocks.setdefault(point.block, []).append(point.field)
    return blocks


def test_run_reads_past_dropping_request(tmp_path):
    plan = load_profile(PROFILE).plan()
    blocks = fields_by_block(plan)
    dropping = sorted(blocks)[len(blocks) // 2]  # a request with fields on both sides
    request = plan.requests[dropping]
    later = [field for block, fields in blocks.items() if block > dropping for field in fields]
    assert later, "the profile has no field after the dropping request"
    with simulator("--profile", PROFILE, "--disconnect-at", str(request.address)) as (host,
                                                                                       port):
        environ = gateway_env(tmp_path / "spool", INVERTER_IP=host, INVERTER_PORT=port,
                              DRIVER_PROFILE_PATH=PROFILE)
        run = run_gateway(environ, 4)
    assert run.returncode == 0, run.stderr
    assert len(run.records) == 4
    for record in run.records[1:]:
        assert record["state"] == "degraded", record["error"]
        assert f"address {request.address}" in record["error"]
        for field in later:
            assert record["quality"][field] == "ok", (field, record["error"])
        for field in blocks[dropping]:
            assert record["quality"][field] == "comm_error"
    first, last = request.address, request.address + request.count - 1
    assert (f"closed the connection instead of replying to the request for registers "
            f"{first}..{last} (unit id {request.unit_id}, function {request.function}) in 2 "
            f"cycles in a row") in run.stderr
    assert run.stderr.count("in 2 cycles in a row") == 1, "logged once, not every cycle"
