"""The data of a diagnosis: what ``bessai check`` observed of a device, and its findings."""

import dataclasses

from bessai_edge.i18n import _

ERROR = "error"
WARNING = "warning"
OK = "ok"

# Canonical fields that tell whether a profile fits the device: a device that has none
# of those its profile maps is almost certainly read with the wrong profile.
MAIN_FIELDS = ("soc_pct", "battery_power_kw", "ac_power_kw", "pv_power_kw",
               "grid_frequency_hz")

SKIPPED = "skipped"  # a request not sent: the link was down after an earlier failure
PARTIAL_REPLY = "partial_reply"  # a request timeout after part of the reply had arrived
# A request that failed with one of these waited out a timeout or a reconnect.
SLOW_OUTCOMES = ("timeout", PARTIAL_REPLY, "disconnected", SKIPPED, "mismatched_reply")


def unit_id_hint(profile=None):
    """Return the unit ids the bundled profiles' devices use by default, translated.

    For a ``profile`` whose name starts with a make that a bundled profile covers
    (``victron_multiplus``: Victron), only that make's unit ids are returned.
    """
    makes = {"huawei": _("Huawei SUN2000 1 (0 through the inverter's own access point, 100 "
                         "on some dongles)"),
             "sma": _("SMA 3"),
             "victron": _("Victron GX 100 (VE.Bus 227 on a Cerbo GX, 246 on a CCGX, 228 on "
                          "a MultiPlus-II GX; battery often 225; the GX lists them under "
                          "Settings > Services > Modbus TCP > Available services)"),
             "fronius": _("Fronius 1 (meter 200)")}
    make = (profile or "").split("_", 1)[0]
    if make in makes:
        return makes[make]
    return _("Huawei SUN2000 1 (0 through the inverter's own access point, 100 on some "
             "dongles), SMA 3, Victron GX 100 (VE.Bus 227, 246 or 228), Fronius 1 "
             "(meter 200)")


@dataclasses.dataclass
class Observation:
    """Outcome of checking one device: its connection and every request.

    ``request_outcomes`` has one entry per request: ``ok`` or the LinkError kind
    (``timeout``, ``exception_11``...). ``all_words_ffff`` is True when at least one
    request got a reply and every word of every reply was 0xFFFF. ``late_replies``
    counts replies that came after their request had timed out. ``request_timeout_s``
    is the timeout in use (REQUEST_TIMEOUT_S or the profile's). When it is None, the
    findings leave out the late replies and the hint to raise the timeout.
    """

    endpoint: str
    port: int
    unit_id: int
    profile: str
    unit_id_set: bool = False     # the unit id comes from the settings, not the profile
    loopback: bool = False        # the host is this machine: 127.0.0.0/8, ::1 or localhost
    request_timeout_s: float | None = None
    quiet_after_connect_s: float | None = None  # the profile's wait before the first request
    connect_error_kind: str | None = None
    connect_error: str = ""
    discovery_error: str = ""
    request_outcomes: list = dataclasses.field(default_factory=list)  # first pass only
    # (unit id, function code, first address, register count) per request, as the outcomes
    requests: list = dataclasses.field(default_factory=list)
    all_words_ffff: bool = False
    no_data_units: tuple = ()     # unit ids of a multi-unit plan that read only 0xFFFF
    exception_11_units: tuple = ()  # unit ids of a multi-unit plan that got only exception 11
    silent_units: tuple = ()      # unit ids of a multi-unit plan that got only timeouts
    units_without_sunspec: tuple = ()  # role unit ids where SunSpec discovery found no map
    unit_roles: dict = dataclasses.field(default_factory=dict)  # unit id -> its role names
    # Role -> the name the profile gives it in the messages (see Profile.role_label)
    role_labels: dict = dataclasses.field(default_factory=dict)
    # Role -> its unit id in the profile, before the settings' MODBUS_SLAVE_ID and MODBUS_UNIT_
    profile_units: dict = dataclasses.field(default_factory=dict)
    # Unit id that rejected every register of its own roles (exception 2) -> the unit ids
    # of other roles, which gave no data, whose registers it served when probed.
    serving_units: dict = dataclasses.field(default_factory=dict)
    late_replies: int = 0         # first pass only, like request_outcomes
    unknown_id_frames: int = 0    # first pass: frames whose transaction id no request used
    busy_retries: int = 0         # first pass: requests read on a second try after exception 6
    # First pass: (unit id, function code, first address, register count) of each request
    # at which the device closed the connection instead of replying.
    dropped_requests: list = dataclasses.field(default_factory=list)
    soc_pct: float | None = None
    soc_not_available: tuple = ()  # names of the read points of soc_pct that are "not available"
    battery_max_power_kw: float | None = None  # the larger maximum charge or discharge power
    battery_power_kw: float | None = None
    battery_power_points: tuple = ()  # names of the read points that feed battery_power_kw
    battery_dc_power_kw: float | None = None  # battery_voltage_v times battery_current_a
    battery_power_warn_levels_kw: tuple = ()  # (variable, size in kW) per warning level on
    points: int = 0
    points_ok: int = 0
    points_not_available: int = 0
    points_rejected: int = 0      # not read because the device rejected their addresses
    points_absent: int = 0        # not read because they are not on the device (status absent)
    points_role_off: int = 0      # not read because the settings switch their role off
    roles_off: tuple = ()         # the roles switched off (MODBUS_UNIT_<ROLE>=off), sorted
    main_fields: tuple = ()       # MAIN_FIELDS the profile maps
    main_fields_missing: tuple = ()  # of those, the ones the device does not have
    main_fields_failed: tuple = ()  # of those, the ones whose read failed (comm_error)
    read_s: float | None = None   # time the last read pass took: one cycle's requests
    scan_interval_s: float | None = None  # SCAN_INTERVAL_S, to compare read_s with
    # Single-device variable -> this device's (DeviceSettings.variables), for the messages
    variables: dict = dataclasses.field(default_factory=dict)

    @property
    def points_not_read(self):
        """Count of the points the plan does not read (rejected, absent, role switched off).

        Their quality is ``not_available``, although none of them is a value read.
        """
        return self.points_rejected + self.points_absent + self.points_role_off


@dataclasses.dataclass(frozen=True)
class Finding:
    """One diagnosis line: ``code`` is stable, ``message`` is for the technician."""

    severity: str
    code: str
    message: str
    no_data: bool = False  # the device gave no value, whatever the code (see exit_status)


def outcome_text(kind):
    """Return the words for a request outcome such as ``refused`` or ``exception_2``.

    Findings' codes and ``bessai check --json`` keep the kind itself, which scripts and
    the documentation use; the words are for people, in their language.
    """
    if kind.startswith("exception_"):
        return _("exception {code}").format(code=kind[len("exception_"):])
    texts = {"refused": _("connection refused"), "unreachable": _("host unreachable"),
             "timeout": _("timeout"), "disconnected": _("connection lost"),
             "short_reply": _("short reply"), "mismatched_reply": _("mismatched reply"),
             PARTIAL_REPLY: _("partial reply"), SKIPPED: _("not sent, link down"),
             "no_data": _("every register 0xFFFF")}
    return texts.get(kind, kind)


def exception_meaning(code):
    """Return a sentence that names Modbus exception ``code`` and what it means here.

    The names are those of the Modbus Application Protocol Specification V1.1b3,
    section 7. Returns None for a code it does not define.
    """
    meanings = {
        1: _("Exception 1 (illegal function): the device does not serve this function "
             "code on this unit id."),
        2: _("Exception 2 (illegal data address): the device does not have these "
             "registers."),
        3: _("Exception 3 (illegal data value): the device rejects the register count or "
             "range of the request."),
        4: _("Exception 4 (server device failure): the device failed while reading these "
             "registers."),
        6: _("Exception 6 (server device busy): the device was busy with other work, also "
             "when asked again."),
        10: _("Exception 10 (gateway path unavailable): the Modbus TCP gateway has no path "
              "to this unit id."),
        11: _("Exception 11 (gateway target device failed to respond): no device replied "
              "to the Modbus TCP gateway on this unit id."),
    }
    return meanings.get(code)
