"""The read plan of one device: requests, the cycle buffer layout and the decode table.

``build_plan`` resolves a profile (and, for SunSpec, the model maps) into points, groups
them into requests with the pure functions of ``planner`` and packs the core's decode
table once. Table entries are the points in plan order, then one entry per canonical
field mapped by a single point (its value converted by ``field_scale``), then one entry
per derived field, which ``PlanTable.decode`` computes after the core has decoded the
points. ``ReadPlan.fields`` maps each canonical field to its entry, so
``values[plan.fields["soc_pct"]]`` is the state of charge in percent.

When the device rejects a request with exception 2, ``mark_illegal_address`` finds the
rejected addresses. The plan regroups its requests around them at ``apply_learned()``
(the poller calls it to read the cycle again, ``table.decode`` at the latest), so later
reads never ask for them again.
"""

import logging
import math
from typing import NamedTuple

from bessai_edge.errors import DeviceException, LinkError, ProfileError
from bessai_edge.i18n import _
from bessai_edge.profile import planner
from bessai_edge.profile.fields import FUNCTION_NAMES
from bessai_edge.profile.resolve import (
    ILLEGAL, READABLE, normalize_model_maps, resolve_points)

logger = logging.getLogger(__name__)

ILLEGAL_DATA_ADDRESS = 2


class Request(NamedTuple):
    """One Modbus read: ``block`` is its index in ``plan.requests`` and in block_status."""

    unit_id: int
    function: int       # Modbus function code: 3 holding, 4 input
    address: int
    count: int
    block: int
    buffer_offset: int  # first word of the cycle buffer the reply fills


def build_plan(profile, unit_id=None, unit_ids=None, model_map=None):
    """Resolve ``profile`` into a ReadPlan (see ``Profile.plan``)."""
    units = profile.resolve_units(unit_id, unit_ids)
    maps = normalize_model_maps(model_map)
    if profile.sunspec:
        missing = [unit for unit in profile.sunspec_units(unit_id, unit_ids)[:1]
                   if unit not in maps]
        if missing:
            raise ProfileError(_(
                "profile {profile} resolves points by SunSpec model: discover unit {unit} "
                "first (sunspec.discover) and pass its model map"
            ).format(profile=profile.name, unit=missing[0]))
    points = resolve_points(profile, units, maps)
    return ReadPlan(profile, points, units)


class ReadPlan:
    """Requests, points and the decode table of one device; see the module docstring."""

    def __init__(self, profile, points, units):
        self.profile = profile
        self.points = points
        self.units = units            # role name -> unit id (None: role not read)
        self.fields = {}
        self.derived = []             # (entry index, ((point index, factor), ...), ignore_na)
        self._learned = {}            # (unit, function) -> [(start, end)] rejected ranges
        self._barriers = {}           # (unit, function) -> {address}: requests never span it
        self._isolations = []         # requests split without a read function, to be confirmed
        self._pending = False
        self._decodes = 0             # cycles decoded so far
        self.requests = []
        self.buffer_words = 0
        self.table = None
        # Set by the poller: the device's name leads the plan's log lines, and its
        # journal fields go with them.
        self.log_name = ""
        self.log_extra = {}
        self._layout()

    # -- layout --------------------------------------------------------------------------

    def _layout(self):
        """Group the points into requests, lay out the cycle buffer and pack the table."""
        self._update_status()
        requests = []
        self._request_atoms = []
        offset = 0
        for (unit, function), members in sorted(self._groups().items()):
            for start, end, atom_ranges, point_indexes in self._group_requests(
                    unit, function, members):
                block = len(requests)
                requests.append(Request(unit, function, start, end - start, block, offset))
                self._request_atoms.append(atom_ranges)
                for index in point_indexes:
                    point = self.points[index]
                    point.index = offset + point.address - start
                    point.block = block
                offset += end - start
        longest = max((point.length for point in self.points), default=1)
        self.buffer_words = max(offset, longest, 1)
        for point in self.points:
            if not point.readable:
                point.index, point.block = 0, 0
        self.requests = requests
        self.table = PlanTable(self)

    def _update_status(self):
        """Mark the points whose addresses were rejected, and the values scaled by them."""
        for point in self.points:
            point.sf_apart = False
            if point.status == ILLEGAL:
                point.status = READABLE
        for point in self.points:
            if not point.readable:
                continue
            ranges = self._learned.get((point.unit_id, point.function), ())
            if planner.crosses_hole(point.address, point.address + point.length, ranges):
                point.status = ILLEGAL
        for point in self.points:
            if point.readable and point.sf >= 0 and not self.points[point.sf].readable:
                point.status = self.points[point.sf].status

    def _groups(self):
        groups = {}
        for index, point in enumerate(self.points):
            if point.readable:
                groups.setdefault((point.unit_id, point.function), []).append(index)
        return groups

    def _group_requests(self, unit, function, members):
        """Return (start, end, atom ranges, point indexes) per request of a unit and function."""
        profile = self.profile
        position = {index: number for number, index in enumerate(members)}
        spans = [(self.points[i].address, self.points[i].address + self.points[i].length)
                 for i in members]
        links = [(position[i], position[self.points[i].sf]) for i in members
                 if self.points[i].sf >= 0 and self.points[i].sf in position]
        atoms, apart = planner.build_atoms(spans, links, profile.max_registers)
        for number in apart:
            self.points[members[number]].sf_apart = True
        if apart:
            logger.info("unit %d: %d points lie more than %d registers from their SunSpec "
                        "scale factor (%s ...); they are scaled with the factor read by "
                        "another request of the same cycle", unit, len(apart),
                        profile.max_registers, self.points[members[apart[0]]].name)
        holes = self.holes_for(unit, function)
        barriers = self._barriers.get((unit, function), ())
        grouped = planner.group_atoms(atoms, profile.max_registers, profile.max_gap, holes,
                                      barriers)
        result = []
        for start, end, atom_indexes in grouped:
            ranges = [(atoms[i][0], atoms[i][1]) for i in atom_indexes]
            indexes = [members[m] for i in atom_indexes for m in atoms[i][2]]
            result.append((start, end, ranges, indexes))
        return result

    def holes_for(self, unit, function):
        """Return the half-open ranges a request of this unit and function must not read."""
        ranges = list(self._learned.get((unit, function), ()))
        for hole in self.profile.holes:
            if hole.function not in (None, function):
                continue
            if hole.unit_role is not None and self.units.get(hole.unit_role) != unit:
                continue
            ranges.append((hole.first, hole.last + 1))
        return ranges

    def _log(self, level, message, *args):
        """Log a line of this plan, led by the device's name when the poller gave it."""
        if self.log_name:
            message, args = "%s: " + message, (self.log_name, *args)
        logger.log(level, message, *args, extra=self.log_extra)

    # -- exception 2 ---------------------------------------------------------------------

    def mark_illegal_address(self, request, read=None):
        """Handle exception 2 (Illegal Data Address) on ``request``; return learned ranges.

        ``read(unit_id, function, address, count) -> words`` raises DeviceException like
        the link's. With it, the rejected request is split in halves and read again until
        every rejected atom or gap is found, so the next read of the plan goes around them
        with no failing request. Without it, the request's atoms are read one by one in
        the next cycle, and an atom that is rejected alone is remembered at once. The new
        requests take effect at ``apply_learned()``, which this cycle's ``table.decode``
        calls if the poller has not. Returns the
        ``(unit_id, function, first, last)`` address ranges remembered by this call.
        """
        if not 0 <= request.block < len(self.requests) or self.requests[request.block] != request:
            self._log(logging.WARNING, "exception 2 reported for %s, which is not a request "
                      "of the current plan; ignored", _describe(request))
            return []
        atom_ranges = self._request_atoms[request.block]
        key = (request.unit_id, request.function)
        if len(atom_ranges) == 1:
            learned = [atom_ranges[0]]
        elif read is not None:
            learned = self._probe(request, atom_ranges, read)
        else:
            self._isolate(request, atom_ranges)
            learned = []
        self._learned.setdefault(key, []).extend(learned)
        self._pending = True
        ranges = [(request.unit_id, request.function, start, end - 1)
                  for start, end in planner.merge_ranges(learned)]
        if ranges:
            self._log(logging.WARNING, "%s: the device rejects registers %s with exception 2 "
                      "(illegal data address); the plan reads around them from now on",
                      _describe(request), ", ".join(
                          _range_text(first, last) for _unit, _function, first, last in ranges))
        return ranges

    def _probe(self, request, atom_ranges, read):
        """Find the rejected atoms and gaps of a request by reading halves of it."""
        learned = []

        def readable(ranges):
            start, end = planner.cover(ranges)
            try:
                read(request.unit_id, request.function, start, end - start)
                return True
            except DeviceException as error:
                if error.code != ILLEGAL_DATA_ADDRESS:
                    raise
            if len(ranges) == 1:
                learned.append(ranges[0])
                return False
            left, right, gap = planner.split_atoms(ranges)
            left_ok = readable(left)
            right_ok = readable(right)
            if left_ok and right_ok:
                if gap is not None:
                    learned.append(gap)
                else:
                    # Both halves read, the whole did not: never read them together again.
                    self._barriers.setdefault(
                        (request.unit_id, request.function), set()).add(right[0][0])
            return False

        try:
            readable(atom_ranges)
        except LinkError as error:
            self._log(logging.WARNING, "probing the rejected request %s stopped: %s; it is "
                      "probed again when it fails next", _describe(request), error)
        return learned

    def _isolate(self, request, atom_ranges):
        """Read each atom of a rejected request alone from the next cycle on."""
        key = (request.unit_id, request.function)
        barriers = self._barriers.setdefault(key, set())
        added = set()
        for start, end in atom_ranges:
            for address in (start, end):
                if address not in barriers:
                    barriers.add(address)
                    added.add(address)
        self._isolations.append((self._decodes, key, request.address,
                                 request.address + request.count,
                                 planner.gaps_between(atom_ranges), added))

    def _confirm_isolations(self, block_status):
        """Settle isolated requests once each atom was read alone (see ``_isolate``)."""
        remaining = []
        for isolation in self._isolations:
            created, key, start, end, gaps, added = isolation
            if created == self._decodes:
                remaining.append(isolation)  # its atoms are read alone from the next cycle
                continue
            blocks = [request.block for request in self.requests
                      if (request.unit_id, request.function) == key
                      and start <= request.address < end]
            rejected_alone = planner.crosses_hole(start, end, self._learned.get(key, ()))
            if blocks and all(block_status[block] == 0 for block in blocks) and (
                    not rejected_alone):
                # Every atom was read alone, so the rejected address lies in a gap.
                self._learned.setdefault(key, []).extend(gaps)
            elif not rejected_alone:
                remaining.append(isolation)  # not every atom was read yet: wait a cycle
                continue
            self._barriers[key] -= added
            self._pending = True
        self._isolations = remaining

    def _after_decode(self, block_status):
        """Apply what this cycle learned; called by PlanTable.decode."""
        if self._isolations:
            self._confirm_isolations(block_status)
        self._decodes += 1
        self.apply_learned()

    def apply_learned(self):
        """Regroup the requests around the rejected addresses learned so far.

        Returns True when the requests changed. ``PlanTable.decode`` calls it after each
        cycle. The poller calls it earlier, after a pass in which a request got exception
        2, and reads the plan again, because the probes found the rejected addresses.
        """
        if not self._pending:
            return False
        self._pending = False
        self._layout()
        self._log(logging.INFO, "read plan regrouped: %d %s, %d registers, %d points not read",
                  len(self.requests), "request" if len(self.requests) == 1 else "requests",
                  sum(request.count for request in self.requests),
                  sum(1 for point in self.points if not point.readable))
        return True

    def forget_hole(self, unit_id, function, first, last):
        """Forget the learned ranges within ``first..last``, a ``learned_holes()`` item.

        For a range the device serves again: like the ranges ``mark_illegal_address``
        learns, the change takes effect after the current cycle's ``table.decode``.
        """
        key = (unit_id, function)
        ranges = self._learned.get(key, [])
        outside = [(start, end) for start, end in ranges
                   if not first <= start < end <= last + 1]
        if len(outside) != len(ranges):
            self._learned[key] = outside
            self._pending = True

    def learned_ranges_within(self, unit_id, function, first, last):
        """Return the ranges learned apart within ``first..last`` as (first, last), sorted.

        ``learned_holes()`` merges adjacent ranges, so one of its items may join ranges
        of several points and gaps, each learned from its own rejected read.
        """
        ranges = self._learned.get((unit_id, function), ())
        return sorted({(start, end - 1) for start, end in ranges
                       if first <= start < end <= last + 1})

    def learned_holes(self):
        """Return the ranges learned from exception 2 as (unit_id, function, first, last)."""
        return [(unit, function, start, end - 1)
                for (unit, function), ranges in sorted(self._learned.items())
                for start, end in planner.merge_ranges(ranges)]

    # -- reporting -----------------------------------------------------------------------

    def unused_registers(self, request):
        """Return how many registers of a request no point uses."""
        used = [(point.address, point.address + point.length) for point in self.points
                if point.readable and point.block == request.block]
        return request.count - sum(end - start for start, end in planner.merge_ranges(used))

    def summary(self):
        """Return counts for logs and benchmarks."""
        return {
            "requests": len(self.requests),
            "registers": sum(request.count for request in self.requests),
            "unused_registers": sum(self.unused_registers(r) for r in self.requests),
            "points": len(self.points),
            "points_not_read": sum(1 for point in self.points if not point.readable),
        }


class PlanTable:
    """The core's DecodeTable of a plan, plus the derived fields and the points not read.

    ``decode(words, block_status)`` returns ``(values, quality)`` like the core's
    table, with one entry per point, then per canonical field, then per derived field.
    """

    def __init__(self, plan):
        from bessai_edge import core

        self._core_module = core
        self._plan = plan
        specs = []
        self._not_read = []
        self._scaled_apart = []       # (entry index, sf point index, offset of the entry)
        points = plan.points
        for index, point in enumerate(points):
            self._add_entry(specs, core, point, point.name, 1.0)
        plan.fields = {}
        for index, point in enumerate(points):
            if point.field:
                plan.fields[point.field] = len(specs)
                self._add_entry(specs, core, point, point.field, point.field_scale)
        index_of = {point.name: index for index, point in enumerate(points)}
        plan.derived = []
        for derived in plan.profile.derived:
            terms = tuple((index_of[term.point], term.factor) for term in derived.terms)
            plan.fields[derived.field] = len(specs)
            plan.derived.append((len(specs), terms, derived.ignore_not_available))
            specs.append(core.PointSpec(derived.field, "u16", "ABCD", 0))
        self.point_specs = tuple(specs)
        self._table = core.DecodeTable(specs, plan.buffer_words)
        self.buffer_words = plan.buffer_words
        self.block_count = self._table.block_count

    def _add_entry(self, specs, core, point, name, factor):
        entry = len(specs)
        specs.append(_point_spec(core, point, name, factor))
        if not point.readable:
            self._not_read.append(entry)
        elif point.sf_apart:
            self._scaled_apart.append((entry, point.sf, point.offset * factor))

    def __len__(self):
        return len(self.point_specs)

    def decode(self, words, block_status):
        """Decode one cycle; see the class docstring. Applies learned holes afterwards."""
        core = self._core_module
        if len(block_status) < self._table.block_count:
            block_status = bytes(block_status) + b"\x01" * (
                self._table.block_count - len(block_status))
        values, quality = self._table.decode(words, block_status)
        for index in self._not_read:
            values[index] = math.nan
            quality[index] = core.QUALITY_NOT_AVAILABLE
        for index, sf_index, offset in self._scaled_apart:
            if quality[index] != core.QUALITY_OK:
                continue
            if quality[sf_index] != core.QUALITY_OK:
                values[index] = math.nan
                quality[index] = quality[sf_index]
                continue
            exponent = int(values[sf_index])
            unscaled = values[index] - offset
            scaled = unscaled * 10 ** exponent if exponent >= 0 else unscaled / 10 ** -exponent
            values[index] = scaled + offset
        for slot, terms, ignore_not_available in self._plan.derived:
            values[slot], quality[slot] = _sum_terms(core, values, quality, terms,
                                                     ignore_not_available)
        self._plan._after_decode(block_status)
        return values, quality

    def decode_strings(self, words, block_status=None):
        """Return ``{point name: text}`` of the str points (see the core's table)."""
        texts = self._table.decode_strings(words, block_status)
        for point in self._plan.points:
            if point.type == "str" and not point.readable:
                texts[point.name] = None
        return texts


def _sum_terms(core, values, quality, terms, ignore_not_available):
    """Return (value, quality) of a derived field from its terms' decoded values."""
    total = 0.0
    good = 0
    worst = core.QUALITY_OK
    for index, factor in terms:
        code = quality[index]
        if code == core.QUALITY_OK:
            total += values[index] * factor
            good += 1
        elif not (ignore_not_available and code == core.QUALITY_NOT_AVAILABLE):
            worst = _worse(core, worst, code)
    if worst == core.QUALITY_OK and good == 0:
        worst = core.QUALITY_NOT_AVAILABLE
    return (total if worst == core.QUALITY_OK else math.nan), worst


def _worse(core, first, second):
    order = (core.QUALITY_OK, core.QUALITY_NOT_AVAILABLE, core.QUALITY_INVALID,
             core.QUALITY_COMM_ERROR)
    return first if order.index(first) >= order.index(second) else second


def _point_spec(core, point, name, factor):
    return core.PointSpec(
        name=name, type=point.type, order=point.order, index=point.index,
        length=point.length if point.type == "str" else None,
        block=point.block, scale=point.scale * factor, offset=point.offset * factor,
        sf_index=point.sf if point.readable and not point.sf_apart else -1,
        sentinels=tuple(point.sentinels), default_sentinel=point.default_sentinel)


def _range_text(first, last):
    """Return ``first..last``, or one address alone."""
    return str(first) if first == last else f"{first}..{last}"


def _describe(request):
    return (f"unit {request.unit_id} {FUNCTION_NAMES[request.function]} "
            f"{request.address}+{request.count}")
