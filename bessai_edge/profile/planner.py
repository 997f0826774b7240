"""Read planning as pure functions over register ranges.

A range is a half-open ``(start, end)`` pair of register addresses. An *atom* is the
range of registers that must come back in one request: one point, or a SunSpec value
together with its scale factor (and every other value that shares that scale factor).
The functions here group atoms of one (unit id, function) into the fewest requests the
device accepts, split a request that the device rejected, and compute the lower bound
that the benchmark compares against.
"""

import math


def merge_ranges(ranges):
    """Return the union of ranges as sorted, non-overlapping, non-touching ranges."""
    merged = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def crosses_hole(start, end, holes):
    """Return True when the range [start, end) contains an address of any hole range."""
    return any(start < hole_end and hole_start < end for hole_start, hole_end in holes)


def build_atoms(spans, links, max_registers):
    """Group point spans into atoms that must be read by one request.

    ``spans`` lists the ``(start, end)`` of each point; ``links`` lists ``(value, sf)``
    index pairs meaning that point ``value`` must share a request with point ``sf``.
    Returns ``(atoms, apart)``. ``atoms`` is a list of ``(start, end, members)`` sorted
    by start, ``members`` being point indexes. ``apart`` lists the value points too far
    from their scale factor to fit in one request of ``max_registers`` with it (only
    long repeating groups of SunSpec settings models are). They form atoms of their
    own, and the caller scales them with the factor read by another request.
    """
    values_of = {}
    for value, sf in links:
        values_of.setdefault(sf, []).append(value)
    linked = {value for value, _ in links} | set(values_of)
    atoms = []
    apart = []
    for index, span in enumerate(spans):
        if index not in linked:
            atoms.append((span[0], span[1], (index,)))
    for sf, values in values_of.items():
        members, lost = _fit_star(spans, sf, values, max_registers)
        start = min(spans[member][0] for member in members)
        end = max(spans[member][1] for member in members)
        atoms.append((start, end, tuple(sorted(members))))
        for value in lost:
            atoms.append((spans[value][0], spans[value][1], (value,)))
        apart.extend(lost)
    atoms.sort(key=lambda atom: (atom[0], atom[1], atom[2]))
    return _merge_overlapping(atoms, max_registers), sorted(apart)


def _merge_overlapping(atoms, max_registers):
    """Merge atoms that share registers while the union fits in one request.

    Overlapping atoms read apart would read their common registers twice; SunSpec
    scale factors shared by many values make such overlaps common.
    """
    merged = []
    for start, end, members in atoms:
        if merged:
            last_start, last_end, last_members = merged[-1]
            if start < last_end and max(end, last_end) - last_start <= max_registers:
                merged[-1] = (last_start, max(end, last_end), tuple(sorted(last_members + members)))
                continue
        merged.append((start, end, members))
    return merged


def _fit_star(spans, sf, values, max_registers):
    """Return (members, lost): the scale factor with the values one request can hold."""
    sf_start, sf_end = spans[sf]
    start = min([sf_start] + [spans[value][0] for value in values])
    end = max([sf_end] + [spans[value][1] for value in values])
    if end - start <= max_registers:
        return [sf] + list(values), []
    # Try the windows of max_registers that contain the scale factor and start or end
    # at the scale factor or at a value. Keep the one that contains the most values.
    candidates = {sf_start, sf_end - max_registers}
    for value in values:
        candidates |= {spans[value][0], spans[value][1] - max_registers}
    best = []
    for window_start in sorted(candidates):
        window_end = window_start + max_registers
        if not (window_start <= sf_start and sf_end <= window_end):
            continue
        inside = [value for value in values
                  if window_start <= spans[value][0] and spans[value][1] <= window_end]
        if len(inside) > len(best):
            best = inside
    lost = [value for value in values if value not in best]
    return [sf] + best, lost


def group_atoms(atoms, max_registers, max_gap, holes=(), barriers=()):
    """Group atoms into requests; return a list of ``(start, end, atom_indexes)``.

    Atoms are taken in order of their start address. A request grows while the next
    atom fits in ``max_registers``, the unused registers between them are at most
    ``max_gap``, none of them lies in a hole and no barrier address lies between the
    request's start and the atom's start. Every atom must fit in one request and
    no atom may overlap a hole: the caller removes such atoms first. Taking each atom
    into the current request whenever it fits gives the fewest requests, because a
    request that stops earlier never lets a later one cover more.
    """
    order = sorted(range(len(atoms)), key=lambda i: (atoms[i][0], atoms[i][1]))
    requests = []
    for i in order:
        start, end = atoms[i][0], atoms[i][1]
        if requests:
            request_start, request_end, members = requests[-1]
            gap = start - request_end
            if (gap <= max_gap
                    and max(request_end, end) - request_start <= max_registers
                    and not (gap > 0 and crosses_hole(request_end, start, holes))
                    and not any(request_start < barrier <= start for barrier in barriers)):
                requests[-1] = (request_start, max(request_end, end), members + [i])
                continue
        requests.append((start, end, [i]))
    return [(start, end, tuple(members)) for start, end, members in requests]


def lower_bound(spans, max_registers, max_gap, holes=()):
    """Return a lower bound of the requests needed to read ``spans``.

    Spans separated by more than ``max_gap`` registers or by a hole can never share a
    request, so they form separate clusters. A cluster needs at least its useful
    registers divided by ``max_registers``, rounded up.
    """
    clusters = []
    for start, end in merge_ranges(spans):
        if clusters:
            last = clusters[-1]
            gap = start - last[-1][1]
            if gap <= max_gap and not crosses_hole(last[-1][1], start, holes):
                last.append((start, end))
                continue
        clusters.append([(start, end)])
    return sum(math.ceil(sum(end - start for start, end in cluster) / max_registers)
               for cluster in clusters)


def split_atoms(atom_ranges):
    """Split a rejected request's atoms in two halves for probing.

    ``atom_ranges`` are the ``(start, end)`` of the request's atoms in address order
    (at least two). Returns ``(left, right, gap)``: two lists of atom ranges and the
    range of unused registers between the halves (``None`` when they touch or overlap).
    Reading both halves without the gap shows whether the rejected address lies in the
    left half, the right half or the gap.
    """
    if len(atom_ranges) < 2:
        raise ValueError("split_atoms needs at least two atoms")
    middle = len(atom_ranges) // 2
    left, right = atom_ranges[:middle], atom_ranges[middle:]
    left_end = max(end for _, end in left)
    right_start = right[0][0]
    gap = (left_end, right_start) if right_start > left_end else None
    return left, right, gap


def cover(atom_ranges):
    """Return the ``(start, end)`` range a request needs to read every given atom."""
    return min(start for start, _ in atom_ranges), max(end for _, end in atom_ranges)


def gaps_between(atom_ranges):
    """Return the ranges of unused registers between the given atoms."""
    gaps = []
    merged = merge_ranges(atom_ranges)
    for (_, end), (next_start, _) in zip(merged, merged[1:]):
        gaps.append((end, next_start))
    return gaps
