"""One device's part of a cycle: read its plan, decode, evaluate its limits.

``DevicePoller.poll(cycle_start)`` never raises for a device problem: a refused
connection, a timeout or an exception reply become the device's state and the quality
of its values, so the scan loop writes a record every cycle whatever the device does.
A device that is down costs at most one connect timeout per attempt, or its quiet time
after connect and one request timeout, and the link's backoff spaces the attempts.
"""

import array
import dataclasses
import logging
import math
import time

from bessai_edge import alarms, core, records
from bessai_edge import state as gateway_state
from bessai_edge.battery_power_log import BatteryPowerLog
from bessai_edge.errors import DeviceException, LinkError, ProfileError
from bessai_edge.link import MAX_READ_REGISTERS
from bessai_edge.profile.fields import MAIN_ROLE
from bessai_edge.ratelimit import RateLimitedLog
from bessai_edge.state_changes import DeviceStateLog

logger = logging.getLogger(__name__)

ILLEGAL_DATA_ADDRESS = 2
# Modbus exceptions 10 (gateway path unavailable) and 11 (gateway target device failed to
# respond): a gateway has no device behind the unit id, whatever the address.
GATEWAY_EXCEPTIONS = (10, 11)
NO_DATA_WORD = 0xFFFF  # the word some devices and RS-485 gateways return for an absent unit id
# A unit id whose requests read fewer registers than this is not judged by its 0xFFFF
# words: one or two "not available" registers are normal.
MIN_WORDS_TO_JUDGE = 8
DISCOVERY_RETRY_S = 30.0
# Addresses a device rejected with exception 2 are read again, alone, this long after
# the last rejection, since some devices reject them only for a while.
RELEARN_AFTER_S = 600.0
QUALITY_COMM_ERROR_NAME = core.QUALITY_NAMES[core.QUALITY_COMM_ERROR]


@dataclasses.dataclass
class PollResult:
    """One device's outcome of one cycle, ready for its record."""

    state: str
    error: str | None
    values: dict
    quality: dict
    alarms: list          # active "field:level" names after this cycle, sorted
    alarm_changes: list   # (name, raised) transitions of this cycle


class DevicePoller:
    """Polls one device through its link with its profile's read plan."""

    def __init__(self, device, profile, link, limit_settings, endpoint, clock=time.monotonic):
        self.device = device
        self.profile = profile
        self.link = link
        self.limit_settings = limit_settings
        self.endpoint = endpoint
        self.clock = clock
        self.unit_id = device.unit_id if device.unit_id is not None else profile.unit_id
        self.state = gateway_state.DeviceState(
            name=device.name, profile=profile.name, endpoint=endpoint, unit_id=self.unit_id)
        self.log_extra = {"BESSAI_DEVICE": device.name, "BESSAI_ENDPOINT": endpoint,
                          "BESSAI_PROFILE": profile.name}
        link.set_log_fields(self.log_extra)
        self.state.request_errors = link.counters  # one Counter: the link counts, metrics read
        self.errors = RateLimitedLog(logger)
        self.state_log = DeviceStateLog(logger, device.name, self.log_extra)
        self.battery_power_log = BatteryPowerLog(device.name, profile.name, limit_settings,
                                                 self.log_extra)
        self._power_judged_on = 0       # link.sessions when battery_power_kw was last judged
        self.plan = None
        self.limit_table = None
        self.watched_fields = []
        self._plan_logged = False
        self._pending_changes = []
        self._active = None             # sorted active alarm names; rebuilt on a transition
        self._discovered_on = None      # link.connects when the SunSpec models were read
        self._retry_discovery_at = 0.0
        self._buffer = array.array("H")
        self._requests = None           # the plan.requests that _steps was built from
        self._steps = []
        self._cycle_steps = []          # _steps in this cycle's order (see _read_last)
        self._last_block = None         # block of the request read last, or None
        self._drops_in_row = 0          # passes in a row that the device ended at that request
        self._all_failed = b""
        self._unit_parts = {}           # unit id -> [(block, offset, end)] of its requests
        self._error_kind = None         # kind of the last error, for the journal field
        self._sunspec = profile.sunspec  # a property that scans every point: read it once
        self._last_evaluation_index = None  # scan-grid index of the last limit evaluation
        self._previous_alarms = None    # alarm_restore.PreviousAlarms for the first table
        self._relearn_at = math.inf     # monotonic time to read rejected addresses again
        self._undiscovered_periods = 0  # scan periods run before the first plan (SunSpec)
        self._early_stale = []          # "field:stale" names raised before the first plan
        if not self._sunspec:
            self._set_plan(profile.plan(unit_id=self.unit_id, unit_ids=device.unit_ids))

    def poll(self, cycle_start, periods=1, grid_index=None):
        """Run this device's part of one cycle and return its PollResult.

        The stale alarms count scan periods, not cycles. ``grid_index`` returns the
        index of the scan-grid point the clock has reached. When it is given, the
        periods are counted at the moment the limits are evaluated, so a cycle that
        waits out long timeouts counts the periods it spent. Without it, ``periods``
        (the periods since the previous cycle's start) is used.
        """
        self._error_kind = None
        statuses = None
        answered = False
        error = self._ensure_connected(cycle_start)
        if error is None:
            if cycle_start >= self._relearn_at:
                self._read_rejected_addresses_again()
            statuses, error, answered = self._read_plan()
        if grid_index is not None:
            periods = self._periods_since_last_evaluation(grid_index())
        return self._finish(statuses, error, answered, periods)

    def _read_rejected_addresses_again(self):
        """Read each range rejected with exception 2 alone; the plan takes back those served.

        Reading them alone, outside the plan, keeps this cycle's requests intact when the
        device still rejects them, as it does for registers a model lacks.
        """
        self._relearn_at = math.inf
        still_rejected = False
        try:
            for unit_id, function, first, last in self.plan.learned_holes():
                if self._read_hole_alone(unit_id, function, first, last):
                    continue
                still_rejected = True
                # A merged range joins ranges learned apart (one per point or gap), and
                # the device may serve some of them while it still rejects the others.
                parts = self.plan.learned_ranges_within(unit_id, function, first, last)
                if len(parts) > 1:
                    for part_first, part_last in parts:
                        self._read_hole_alone(unit_id, function, part_first, part_last)
        except LinkError:
            # Another exception code or a link error: the cycle's own reads report the
            # link's state, and the ranges not read yet are read at the next attempt.
            still_rejected = True
        if still_rejected:
            self._relearn_at = self.clock() + RELEARN_AFTER_S

    def _read_hole_alone(self, unit_id, function, first, last):
        """Read registers ``first..last`` alone; forget their hole when the device serves them.

        Returns False when the device still rejects them with exception 2. Raises
        LinkError, or DeviceException for another exception code.
        """
        try:
            for start in range(first, last + 1, MAX_READ_REGISTERS):
                self.link.read(unit_id, function, start,
                               min(MAX_READ_REGISTERS, last + 1 - start))
        except DeviceException as error:
            if error.code != ILLEGAL_DATA_ADDRESS:
                raise
            return False
        self.plan.forget_hole(unit_id, function, first, last)
        logger.info("%s: registers %d..%d (unit id %d, function %d) are served again after "
                    "exception 2, so the plan reads them from the next cycle",
                    self.device.name, first, last, unit_id, function, extra=self.log_extra)
        return True

    def _periods_since_last_evaluation(self, index):
        """Return the grid periods since the last evaluation (the first: since the grid start).

        A device that is silent from start-up makes its first cycle wait out its timeouts,
        and those periods count toward the stale alarm like any later ones.
        """
        last = self._last_evaluation_index
        self._last_evaluation_index = index
        if last is None:
            return max(index + 1, 1)
        return max(index - last, 1)

    def prepare(self):
        """Connect (and discover SunSpec models) before the first cycle.

        The quiet time after connect (about 1 s on a Huawei) is waited out here, so the
        first cycle does not overrun its period. A device that is down only costs its
        connect timeout; the first cycle then reports it.
        """
        error = self._ensure_connected(self.clock())
        if error is None:
            self.link.wait_for_turn()
        else:
            # The first cycle may come before the next attempt is due: it reports this.
            self.state.last_error = error

    def close(self):
        """Report counted state changes and close the device's connection."""
        self.state_log.report_pending(self.clock(), self.state.state, self.state.last_error)
        self.link.close()

    # -- connection ------------------------------------------------------------------
    # The link logs connection loss and recovery itself. The poller logs device state
    # changes (ok, degraded, down) with the device's name in ``_result``.

    def _ensure_connected(self, now):
        """Connect (and discover SunSpec models) when needed; return an error text or None."""
        link = self.link
        if not link.connected:
            if now < max(link.next_attempt_monotonic, self._retry_discovery_at):
                return self.state.last_error or "waiting to reconnect"
            try:
                link.connect()
            except LinkError as error:
                return self._count_error(error)
        if self._sunspec and self._discovered_on != link.connects:
            try:
                self._discover()
            except LinkError as error:
                if not isinstance(error, DeviceException):
                    return self._count_error(error)
                return self._discovery_failed(now, error)
            except ProfileError as error:
                return self._discovery_failed(now, error)
            self._discovered_on = link.connects
        return None

    def _discovery_failed(self, now, error):
        """Close the link and retry discovery later, because the map did not fit.

        A device that is still starting up may come good, so discovery is retried.
        """
        self.link.close()
        self._retry_discovery_at = now + DISCOVERY_RETRY_S
        self.errors.log("sunspec", logging.ERROR, "%s: SunSpec discovery failed: %s "
                        "(retrying in %.0f s)", self.device.name, error,
                        DISCOVERY_RETRY_S, extra=self.log_extra)
        return f"sunspec: {error}"

    def _discover(self):
        from bessai_edge.profile import sunspec

        units = self.profile.sunspec_units(self.unit_id, self.device.unit_ids)
        model_maps = sunspec.discover_units(self.link.read, units)
        plan = self.profile.plan(unit_id=self.unit_id, unit_ids=self.device.unit_ids,
                                 model_map=model_maps)
        if self.plan is None or plan.fields != self.plan.fields:
            logger.info("%s: SunSpec models found: %s", self.device.name,
                        "; ".join(str(model_map) for model_map in model_maps.values()),
                        extra=self.log_extra)
        self._set_plan(plan)

    def _count_error(self, error):
        self._error_kind = error.kind  # the link has counted it in link.counters
        return f"{error.kind}: {error}"

    # -- plan ------------------------------------------------------------------------

    def _set_plan(self, plan):
        plan.log_name, plan.log_extra = self.device.name, self.log_extra
        # Rounding and field names are resolved once per plan; each cycle is one C call.
        self._field_map = core.FieldMap(plan.fields, *records.field_rounding(plan))
        if self.plan is not None and plan.fields == self.plan.fields:
            self.plan = plan  # same layout: keep the limit table and its alarm state
            return
        self.plan = plan
        self._buffer = array.array("H", bytes(2 * plan.buffer_words))
        if self.limit_table is not None:
            # A new field layout needs a new table, whose alarms start cleared: report the clears.
            self._pending_changes = [(alarms.alarm_name(name, level), False)
                                     for name, level in self.limit_table.active()]
        off = fields_of_roles_off(self.profile, plan.units)
        if off and not self._plan_logged:
            self._warn_of_limits_off(off, plan.units)
        self.limit_table, self.watched_fields = alarms.build_limit_table(
            self.limit_settings, {field: entry for field, entry in plan.fields.items()
                                  if field not in off})
        self._active = None  # a new table: list its active alarms at the next evaluation
        if self._previous_alarms is not None:
            self._apply_previous_alarms(self._previous_alarms)
            self._previous_alarms = None
        if self._early_stale:
            # Raised before the plan: the table clears them at the first good value.
            self.limit_table.restore([tuple(name.rsplit(":", 1)) for name in self._early_stale])
            self._early_stale = []
        if not self._plan_logged:
            self._log_plan(plan)
            self._plan_logged = True

    def restore_alarms(self, previous):
        """Start with the alarms active in a previous run's last record (``PreviousAlarms``).

        Applied to the first limit table, which a SunSpec device builds only after
        discovery. Call before the first poll.
        """
        if self.limit_table is None:
            self._previous_alarms = previous
        else:
            self._apply_previous_alarms(previous)

    def _apply_previous_alarms(self, previous):
        pairs = [tuple(name.rsplit(":", 1)) for name in previous.alarms if ":" in name]
        restored = [alarms.alarm_name(name, level)
                    for name, level in self.limit_table.restore(pairs)]
        skipped = sorted(set(previous.alarms) - set(restored))
        extra = {**self.log_extra, "BESSAI_EVENT": "alarm"}
        if restored:
            logger.info("%s: restored the alarms active in the previous run's last record "
                        "(seq %d): %s", self.device.name, previous.seq, ", ".join(restored),
                        extra=extra)
        if skipped:
            logger.info("%s: alarms of the previous run's last record (seq %d) not restored, "
                        "because their limit is off or their field is not read: %s",
                        self.device.name, previous.seq, ", ".join(skipped), extra=extra)

    def _log_plan(self, plan):
        registers = sum(request.count for request in plan.requests)
        lines = ", ".join(_describe_request(request) for request in plan.requests)
        points = sum(1 for point in plan.points if point.readable)
        logger.info("%s: read plan of %d requests, %d registers, %d points: %s; limits on %s",
                    self.device.name, len(plan.requests), registers, points, lines,
                    ", ".join(self.watched_fields) or "no field", extra=self.log_extra)

    def _warn_of_limits_off(self, off, units):
        """Warn once that the limits on fields only switched-off roles feed are off."""
        fields = [limit.field for limit in self.limit_settings.limits
                  if limit.field in off and limit.enabled()]
        if not fields:
            return
        prefix = self.device.variables.get("MODBUS_UNIT_", "MODBUS_UNIT_")
        settings = ", ".join(f"{prefix}{role.upper()}=off"
                             for role, unit in units.items() if unit is None)
        logger.warning("%s: %s switches off the only points that feed %s, so the safety "
                       "limits on %s are off; if the site has that part, set its unit id "
                       "instead", self.device.name, settings, ", ".join(fields),
                       "it" if len(fields) == 1 else "them", extra=self.log_extra)

    # -- reading ---------------------------------------------------------------------

    def _read_plan(self, again=True):
        """Read every request of the plan.

        Returns (block statuses, last error text, whether the device replied at all).
        An exception response counts as a reply. When a request was rejected with
        exception 2, the plan has learned the rejected addresses by probing, so the
        regrouped plan is read once more (``again``) and the cycle gets its values. The
        other failures of the pass were exception replies, which come back at once.
        """
        plan = self.plan
        requests = plan.requests  # replaced, never changed in place, when the plan regroups
        if requests is not self._requests:
            self._set_requests(plan)
        if not self._steps:
            return bytearray(), self._empty_plan_error(), False
        statuses = bytearray(self._all_failed)
        buffer = self._buffer
        read = self.link.read_checked
        error_text = None
        answered = False
        first_word_ffff = False
        rejected = 0
        for request, unit_id, function, address, count, offset, end, block in self._cycle_steps:
            try:
                words = read(unit_id, function, address, count)
            except DeviceException as error:
                error_text = self._device_exception(request, error)
                answered = True
                if error.code == ILLEGAL_DATA_ADDRESS:
                    rejected += 1
                continue
            except LinkError as error:
                if error.dropped_after_request:
                    self._read_last(request)
                # The request's unit id shows which part of a multi-unit device went silent.
                return statuses, (f"{self._count_error(error)}; unit id {unit_id}, function "
                                  f"{function} address {address} count {count}"), answered
            buffer[offset:end] = words  # both array('H'): one copy
            statuses[block] = 0
            answered = True
            if words[0] == NO_DATA_WORD:
                first_word_ffff = True
        if first_word_ffff:
            error_text = self._reject_no_data_units(statuses) or error_text
        if rejected and again and plan.apply_learned():
            return self._read_plan(again=False)
        self._drops_in_row = 0
        return statuses, error_text, answered

    def _read_last(self, request):
        """Read ``request`` last from the next cycle on: the device closed the connection.

        Some devices close the connection instead of replying to a request they cannot
        serve. Read in the plan's order, the requests after it would then never be read;
        read last, it costs only its own values. The second pass in a row that ends at
        the same request is logged, with the registers to check.
        """
        block = request.block
        self._drops_in_row = self._drops_in_row + 1 if block == self._last_block else 1
        if block != self._last_block:
            steps = self._steps
            self._cycle_steps = steps[block + 1:] + steps[:block + 1]
            self._last_block = block
        if self._drops_in_row == 2:
            self.errors.log(("dropped", block), logging.WARNING,
                            "%s: the device closed the connection instead of replying to the "
                            "request for registers %d..%d (unit id %d, function %d) in 2 "
                            "cycles in a row; that request is read last from now on, so the "
                            "others are read first. Check that the device serves those "
                            "registers (`bessai check` lists the points), or leave them out "
                            "of the profile", self.device.name, request.address,
                            request.address + request.count - 1, request.unit_id,
                            request.function,
                            extra={**self.log_extra, "BESSAI_ERROR_KIND": "disconnected"})

    def _empty_plan_error(self):
        """Return the error text of a cycle whose plan has no request left to send.

        The plan is empty when the device rejected every address of the profile with
        exception 2, or when its SunSpec map has none of the profile's models. The device
        replied, so the record must not read as "no answer".
        """
        self._error_kind = "no_registers"
        name = self.profile.name
        if self.plan.learned_holes():
            cause = f"the device rejects every address of profile {name} with exception 2"
        elif self._sunspec:
            cause = f"the device's SunSpec map has none of the models profile {name} reads"
        else:
            cause = f"profile {name} has no register to read on this device"
        variable = self.device.variables.get("DRIVER_PROFILE_PATH", "DRIVER_PROFILE_PATH")
        return (f"no_registers: {cause}; check {variable}, and list the profiles with "
                f"`bessai profiles`")

    def _reject_no_data_units(self, statuses):
        """Mark as failed the requests of each unit id that read 0xFFFF in every register.

        A device or an RS-485 gateway may reply to a unit id that nothing serves with
        0xFFFF in every register. Decoded, those words give plausible values (-0.1 C,
        -0.001 kW) and false alarms, so they count as a failed read. Returns the error
        text, or None when no unit id read only 0xFFFF.
        """
        rejected = units_reading_no_data(self._unit_parts, self._buffer, statuses)
        if not rejected:
            return None
        for unit_id in rejected:
            for block, _offset, _end in self._unit_parts[unit_id]:
                statuses[block] = 1
        self._error_kind = "no_data"
        return (f"no_data: unit id {', '.join(map(str, rejected))} read 0xFFFF in every "
                f"register: no device replies to that unit id here (check MODBUS_SLAVE_ID "
                f"or the unit id settings, and the profile; `bessai check` tells which)")

    def _set_requests(self, plan):
        """Unpack the plan's requests once, so each cycle reads plain tuples."""
        self._requests = plan.requests
        self._last_block = None
        self._drops_in_row = 0
        self._steps = self._cycle_steps = [(request, request.unit_id, request.function, request.address,
                        request.count, request.buffer_offset,
                        request.buffer_offset + request.count, request.block)
                       for request in plan.requests]
        self._all_failed = b"\x01" * len(plan.requests)
        self._unit_parts = judged_unit_parts(plan.requests)
        if len(self._buffer) != plan.buffer_words:
            self._buffer = array.array("H", bytes(2 * plan.buffer_words))

    def _device_exception(self, request, error):
        self._error_kind = error.kind
        text = f"{error.kind}: {error}"
        if error.code == ILLEGAL_DATA_ADDRESS:
            # The plan probes the request's parts now and logs the rejected addresses.
            # Its regrouped requests read around them, from this cycle's second pass on.
            self.plan.mark_illegal_address(request, read=self.link.read)
            self._relearn_at = self.clock() + RELEARN_AFTER_S
        elif error.code in GATEWAY_EXCEPTIONS:
            # Every request to that unit id fails alike: one line per unit id, with the fix.
            self.errors.log(("exception", error.code, request.unit_id), logging.WARNING,
                            "%s: %s; no device answers unit id %d behind this gateway: check "
                            "%s (`bessai check` lists the usual unit ids)",
                            self.device.name, text, request.unit_id,
                            self._unit_id_variable(request.unit_id),
                            extra={**self.log_extra, "BESSAI_ERROR_KIND": error.kind})
        else:
            self.errors.log(("exception", error.code, request.address), logging.WARNING,
                            "%s: %s", self.device.name, text,
                            extra={**self.log_extra, "BESSAI_ERROR_KIND": error.kind})
        return text

    def _unit_id_variable(self, unit_id):
        """Return the setting that gives ``unit_id``: the device's own, or a role's."""
        variables = self.device.variables
        if unit_id == self.unit_id:
            return variables.get("MODBUS_SLAVE_ID", "MODBUS_SLAVE_ID")
        roles = [role for role, role_unit in self.profile.resolve_units(
            self.device.unit_id, self.device.unit_ids).items() if role_unit == unit_id]
        prefix = variables.get("MODBUS_UNIT_", "MODBUS_UNIT_")
        return " or ".join(f"{prefix}{role.upper()}" for role in roles) or "the unit ids"

    # -- result ----------------------------------------------------------------------

    def _finish(self, statuses, error, answered, periods):
        plan = self.plan
        if plan is None:
            return self._result_before_plan(error, periods)
        if statuses is None:
            statuses = bytearray(b"\x01" * len(plan.requests))
        decoded, codes = plan.table.decode(self._buffer, statuses)
        values, quality = self._field_map.build(decoded, codes)
        if self._power_judged_on != self.link.sessions:
            # Once per connection, so a normal cycle pays one comparison for it.
            if self.battery_power_log.judge(values, plan):
                self._power_judged_on = self.link.sessions
        transitions = self.limit_table.evaluate(decoded, codes, periods)
        changes = self._pending_changes
        if transitions or changes or self._active is None:
            changes = changes + [(alarms.alarm_name(name, level), raised)
                                 for name, level, raised in transitions]
            self._pending_changes = []
            # The active alarms change only with a transition: build the list then.
            self._active = sorted(alarms.alarm_name(name, level)
                                  for name, level in self.limit_table.active())
        active = self._active
        if not answered or all(statuses):
            # Exception replies to every request give no data either: a wrong unit id
            # (exception 11) reads as down, not as partly working.
            device_state = gateway_state.DEVICE_DOWN
        elif any(statuses):
            device_state = gateway_state.DEVICE_DEGRADED
        else:
            device_state = gateway_state.DEVICE_OK
        return self._result(device_state, error, values, quality, active, changes)

    def _result_before_plan(self, error, periods):
        """Return the result of a cycle before the first plan (a SunSpec device not found).

        There is no limit table yet, so the alarms restored from the previous run are
        carried as they are. The stale alarms of the fields the profile maps are raised
        once STALE_AFTER_S has passed, as a table would raise them. The first
        table takes both on (see ``_set_plan``).
        """
        values, quality = _missing(self.profile)
        restored = (alarms.restorable_alarms(self.limit_settings, self._previous_alarms.alarms)
                    if self._previous_alarms is not None else [])
        changes = []
        self._undiscovered_periods += periods
        stale_cycles = self.limit_settings.stale_cycles
        if (stale_cycles and not self._early_stale
                and self._undiscovered_periods >= stale_cycles):
            self._early_stale = [alarms.alarm_name(field, "stale")
                                 for field in alarms.watched_fields(self.limit_settings,
                                                                    _profile_fields(self.profile))]
            changes = [(name, True) for name in self._early_stale if name not in restored]
        active = sorted(set(restored) | set(self._early_stale))
        return self._result(gateway_state.DEVICE_DOWN, error, values, quality, active, changes)

    def _result(self, device_state, error, values, quality, active, changes):
        state = self.state
        if device_state != state.state:
            self.state_log.changed(self.clock(), state.state, device_state, error,
                                   self._error_kind)
        elif self.state_log.pending:
            self.state_log.cycle_done(self.clock(), device_state, error)
        state.state = device_state
        state.reconnects = max(self.link.sessions - 1, 0)
        state.last_error = error or ""
        state.requests = self.link.requests
        state.values = values
        state.quality_counts.update(quality.values())
        return PollResult(device_state, error, values, quality, active, changes)


def fields_of_roles_off(profile, units):
    """Return the fields that only points of switched-off roles feed (``units[role]`` None).

    Such a field has no value on this site, so no limit watches it and it raises no
    stale alarm.
    """
    off = {role for role, unit in units.items() if unit is None}
    if not off:
        return set()
    roles = {point.name: point.unit_role or MAIN_ROLE for point in profile.points}
    feeders = {}
    for point in profile.points:
        if point.field:
            feeders.setdefault(point.field, set()).add(roles[point.name])
    for derived in profile.derived:
        feeders.setdefault(derived.field, set()).update(
            roles.get(term.point, MAIN_ROLE) for term in derived.terms)
    return {field for field, feeding in feeders.items() if feeding <= off}


def judged_unit_parts(requests):
    """Return unit id -> [(block, offset, end)] of ``requests``, for unit ids worth judging.

    A unit id is judged by its 0xFFFF words only when its requests read at least
    MIN_WORDS_TO_JUDGE registers in all.
    """
    parts = {}
    for request in requests:
        parts.setdefault(request.unit_id, []).append(
            (request.block, request.buffer_offset, request.buffer_offset + request.count))
    return {unit_id: unit_parts for unit_id, unit_parts in parts.items()
            if sum(end - offset for _block, offset, end in unit_parts) >= MIN_WORDS_TO_JUDGE}


def units_reading_no_data(unit_parts, buffer, statuses):
    """Return the unit ids of ``unit_parts`` that read 0xFFFF in every register.

    A unit id with a failed request (``statuses[block]`` not 0) is judged by that
    failure instead, so it is left out.
    """
    return [unit_id for unit_id, parts in unit_parts.items()
            if not any(statuses[block] for block, _offset, _end in parts)
            and all(buffer[offset:end].count(NO_DATA_WORD) == end - offset
                    for _block, offset, end in parts)]


def _missing(profile):
    fields = profile_field_names(profile)
    return dict.fromkeys(fields), dict.fromkeys(fields, QUALITY_COMM_ERROR_NAME)


def profile_field_names(profile):
    """Return the canonical fields a profile's plan will have, in point order."""
    names = []
    for field in [point.field for point in profile.points] + [d.field for d in profile.derived]:
        if field and field not in names:
            names.append(field)
    return names


def _describe_request(request):
    kind = {3: "holding", 4: "input"}.get(request.function, f"fc{request.function}")
    return f"{kind} {request.address}+{request.count} unit {request.unit_id}"


def _profile_fields(profile):
    """Return the canonical fields a profile maps, from its points and derived values."""
    return ({point.field for point in profile.points if point.field}
            | {derived.field for derived in profile.derived})
