"""Profile validation: every bad profile is rejected with file, place, key, value and fix.

Each case mutates a small valid profile. Where JSON Schema can express the rule, the
bundled registry/profile.schema.json must reject the same profile, so the hand-written
validation and the schema cannot drift apart.
"""

import copy
import json

import jsonschema
import pytest

from bessai_edge.errors import EX_CONFIG, ProfileError
from bessai_edge.profile import bundled_profiles, load_profile, parse_profile
from bessai_edge.profile.registry import SCHEMA_FILE, registry_dir

PATH = "site/custom.json"

BASE = {
    "name": "custom",
    "title": "Test inverter",
    "documents": [{"publisher": "Maker", "title": "Modbus map", "version": "1.2"}],
    "device": {
        "unit_id": 1, "port": 502, "max_registers": 100, "max_gap": 4,
        "quiet_after_connect_s": 0.5, "min_request_interval_s": 0.0, "request_timeout_s": 2.0,
        "unit_roles": {"meter": {"unit_id": 200, "description": "grid meter"}},
        "holes": [{"first": 500, "last": 509, "reason": "rejected by the device"}],
    },
    "points": [
        {"name": "soc", "address": 100, "type": "u16", "scale": 0.1, "unit": "%",
         "field": "soc_pct", "description": "State of charge"},
        {"name": "power", "address": 101, "type": "s32", "unit": "W", "field": "ac_power_kw",
         "field_scale": 0.001, "description": "AC power"},
        {"name": "power_sf", "address": 103, "type": "sunssf", "description": "Power scale factor"},
        {"name": "dc_power", "address": 104, "type": "s16", "scale_factor": "power_sf",
         "unit": "W", "description": "DC power"},
        {"name": "grid", "address": 300, "type": "s32", "unit": "W", "unit_role": "meter",
         "description": "Grid power"},
        {"name": "model", "address": 200, "type": "str", "length": 8, "description": "Model"},
    ],
    "derived": [
        {"field": "grid_power_kw", "description": "grid power, import positive",
         "sum": [{"point": "grid", "factor": 0.001}]},
    ],
}


def _point(data, name):
    return next(point for point in data["points"] if point["name"] == name)


def _walk(data, path):
    """Follow keys and list indexes; a string in a list picks the point of that name."""
    target = data
    for key in path:
        if isinstance(target, list) and isinstance(key, str):
            target = next(item for item in target if item["name"] == key)
        else:
            target = target[key]
    return target


def _set(path, value):
    """Return a mutation that sets the item at ``path`` to ``value``."""
    def mutate(data):
        _walk(data, path[:-1])[path[-1]] = value
    return mutate


def _delete(path):
    def mutate(data):
        del _walk(data, path[:-1])[path[-1]]
    return mutate


def _add_point(point):
    def mutate(data):
        data["points"].append(point)
    return mutate


def _replace(key, value):
    def mutate(data):
        data[key] = value
    return mutate


def _only_main_unit(data):
    """A profile without unit_roles whose grid point names a role anyway."""
    del data["device"]["unit_roles"]
    grid = next(point for point in data["points"] if point["name"] == "grid")
    grid["unit_role"] = "vebus"


# (case id, mutation, fragments the problem line must contain, schema also rejects)
CASES = [
    ("unknown_top_level_key", _replace("pionts", []),
     ["profile", "unknown key 'pionts'", "did you mean 'points'"], True),
    ("missing_documents", _delete(["documents"]), ["profile", "documents is missing"], True),
    ("document_without_version", _delete(["documents", 0, "version"]),
     ["documents[0]", "version is missing"], True),
    ("unknown_point_key", _set(["points", "soc", "adress"], 5),
     ["point 'soc'", "unknown key 'adress'", "did you mean 'address'"], True),
    ("unknown_type", _set(["points", "soc", "type"], "u17"),
     ["point 'soc'", 'type: "u17" is invalid', "u16, s16"], True),
    ("sign_flip_on_soc", _set(["points", "soc", "field_scale"], -1),
     ["point 'soc'", "field_scale: -1 is invalid", "soc_pct has no direction", "write 1"],
     False),
    ("unit_in_wrong_case", _set(["points", "power", "unit"], "KW"),
     ["point 'power'", 'unit: "KW" is invalid', "case-sensitive: write kW"], False),
    ("fahrenheit_on_celsius_field",
     lambda data: data["points"][0].update(field="battery_temp_c", unit="degF"),
     ["point 'soc'", 'unit: "degF" is invalid', "offset to -17.78"], False),
    ("unknown_byte_order", _set(["points", "power", "order"], "ABDC"),
     ["point 'power'", 'order: "ABDC" is invalid', "ABCD, BADC, CDAB, DCBA"], True),
    ("address_above_65535", _set(["points", "soc", "address"], 65536),
     ["point 'soc'", "address: 65536 is invalid", "from 0 to 65535"], True),
    ("address_negative", _set(["points", "soc", "address"], -1),
     ["point 'soc'", "address: -1 is invalid", "from 0 to 65535"], True),
    ("address_as_string", _set(["points", "soc", "address"], "100"),
     ["point 'soc'", 'address: "100" is invalid', "an integer"], True),
    ("point_runs_past_65535", _set(["points", "power", "address"], 65535),
     ["point 'power'", "address: 65535 is invalid", "run past 65535", "at most 65534"], False),
    ("point_longer_than_125", _set(["points", "model", "length"], 126),
     ["point 'model'", "length: 126 is invalid", "longer than 125"], True),
    ("str_without_length", _delete(["points", "model", "length"]),
     ["point 'model'", "length is missing", "str point needs its length"], True),
    ("length_does_not_match_type", _set(["points", "power", "length"], 1),
     ["point 'power'", "length: 1 is invalid", "s32 points are 2 registers long"], True),
    ("str_with_word_swap", _set(["points", "model", "order"], "CDAB"),
     ["point 'model'", 'order: "CDAB" is invalid', "ABCD or BADC for a str point"], True),
    ("one_register_with_word_swap", _set(["points", "soc", "order"], "CDAB"),
     ["point 'soc'", 'order: "CDAB" is invalid',
      "expected ABCD or BADC: type u16 has one register"], True),
    ("one_register_with_dcba", _set(["points", "soc", "order"], "DCBA"),
     ["point 'soc'", 'order: "DCBA" is invalid', "DCBA swaps registers"], True),
    ("scale_on_enum", _add_point({"name": "mode", "address": 400, "type": "enum16",
                                  "scale": 0.1, "description": "Run mode"}),
     ["point 'mode'", "scale: 0.1 is invalid", "type enum16 holds codes or bits"], True),
    ("offset_on_bitfield", _add_point({"name": "flags", "address": 401, "type": "bitfield32",
                                       "offset": 1, "description": "Alarm bits"}),
     ["point 'flags'", "offset: 1 is invalid", "remove offset"], True),
    ("duplicate_point_name", _set(["points", "power", "name"], "soc"),
     ["points[1]: name: \"soc\" is invalid: points[0] already has this name; rename one"],
     False),
    ("boolean_address_echoed_as_json", _set(["points", "soc", "address"], True),
     ["point 'soc'", "address: true is invalid"], True),
    ("null_unit_echoed_as_json", _set(["points", "soc", "unit"], None),
     ["point 'soc'", "unit: null is invalid"], True),
    ("string_echoed_as_json", _set(["points", "soc", "not_available"], ["x"]),
     ["point 'soc'", 'not_available: "x" is invalid'], True),
    ("field_used_twice", _set(["points", "power", "field"], "soc_pct"),
     ["point 'power'", 'field: "soc_pct" is invalid', "point 'soc' already maps soc_pct"], False),
    ("field_used_by_point_and_derived", _set(["points", "soc", "field"], "grid_power_kw"),
     ["derived[0]", 'field: "grid_power_kw" is invalid', "point 'soc' already maps"], False),
    ("unknown_canonical_field", _set(["points", "soc", "field"], "soc_percent"),
     ["point 'soc'", 'field: "soc_percent" is invalid', "soc_pct, battery_power_kw"], True),
    ("scale_factor_point_missing", _set(["points", "dc_power", "scale_factor"], "dc_sf"),
     ["point 'dc_power'", 'scale_factor: "dc_sf" is invalid', "type is sunssf"], False),
    ("scale_factor_point_not_sunssf", _set(["points", "dc_power", "scale_factor"], "soc"),
     ["point 'dc_power'", 'scale_factor: "soc" is invalid', 'type "u16"', "sunssf"], False),
    ("device_unit_id_above_247", _set(["device", "unit_id"], 248),
     ["device", "unit_id: 248 is invalid", "from 0 to 247"], True),
    ("point_unit_id_above_247", _set(["points", "soc", "unit_id"], 300),
     ["point 'soc'", "unit_id: 300 is invalid", "from 0 to 247"], True),
    ("unit_id_and_role_together", _set(["points", "grid", "unit_id"], 3),
     ["point 'grid'", "unit_id and unit_role are both given"], True),
    ("unknown_unit_role", _set(["points", "grid", "unit_role"], "vebus"),
     ["point 'grid'", 'unit_role: "vebus" is invalid', "main, meter"], False),
    # "expected one of the roles main" read wrong for a profile with one role.
    ("unit_role_of_single_unit_profile", _only_main_unit,
     ["point 'grid'", 'unit_role: "vebus" is invalid', "expected the role main, the only one"],
     False),
    ("max_registers_zero", _set(["device", "max_registers"], 0),
     ["device", "max_registers: 0 is invalid", "from 1 to 125"], True),
    ("max_registers_negative", _set(["device", "max_registers"], -5),
     ["device", "max_registers: -5 is invalid", "from 1 to 125"], True),
    ("max_registers_above_125", _set(["device", "max_registers"], 126),
     ["device", "max_registers: 126 is invalid", "from 1 to 125"], True),
    ("max_gap_negative", _set(["device", "max_gap"], -1),
     ["device", "max_gap: -1 is invalid", "from 0 to 125"], True),
    ("request_timeout_zero", _set(["device", "request_timeout_s"], 0),
     ["device", "request_timeout_s: 0 is invalid", "above 0"], True),
    ("scale_zero", _set(["points", "soc", "scale"], 0),
     ["point 'soc'", "scale: 0 is invalid", "other than 0"], True),
    ("unknown_function", _set(["points", "soc", "function"], "coil"),
     ["point 'soc'", 'function: "coil" is invalid', "holding, input"], True),
    ("not_available_outside_type", _set(["points", "soc", "not_available"], [70000]),
     ["point 'soc'", "not_available: 70000 is invalid", "from 0 to 65535"], True),
    ("point_inside_known_hole", _set(["points", "soc", "address"], 505),
     ["point 'soc'", "address: 505 is invalid", "overlaps device.holes[0]"], False),
    ("point_overlaps_point", _set(["points", "power_sf", "address"], 102),
     ["point 'power_sf'", "address: 102 is invalid", "overlap those of point 'power'",
      "(101..102)"], False),
    ("hole_first_after_last", _set(["device", "holes", 0, "last"], 400),
     ["device.holes[0]", "last: 400 is invalid", "at least first (500)"], False),
    ("derived_unknown_point", _set(["derived", 0, "sum", 0, "point"], "meter"),
     ["derived[0].sum[0]", 'point: "meter" is invalid', "name of a point"], False),
    # The simulator raised TypeError on such a profile, and `bessai run` summed it as 0.
    ("derived_str_point", _set(["derived", 0, "sum", 0, "point"], "model"),
     ["derived[0].sum[0]", 'point: "model" is invalid', "this point is a str point",
      "name a numeric point"], False),
    ("field_scale_without_field", _delete(["points", "power", "field"]),
     ["point 'power'", "field_scale is given without field"], True),
    ("field_on_str_point", _set(["points", "model", "field"], "inverter_state"),
     ["point 'model'", "a str point cannot map a canonical field"], True),
    # A point in W fed a kW field unconverted, and read 1000 times too high.
    ("watts_without_field_scale", _delete(["points", "power", "field_scale"]),
     ["point 'power'", "field_scale is missing", "a point in W feeds ac_power_kw, which is in kW",
      "set field_scale to 0.001 (or -0.001"], False),
    ("field_scale_not_unit_factor", _set(["points", "power", "field_scale"], 1000),
     ["point 'power'", "field_scale: 1000 is invalid", "expected 0.001 or -0.001"], False),
    ("unit_of_other_quantity", _set(["points", "soc", "unit"], "Hz"),
     ["point 'soc'", 'unit: "Hz" is invalid', "soc_pct is in %", "(%)"], False),
    ("derived_factor_not_unit_factor", _set(["derived", 0, "sum", 0, "factor"], 1),
     ["derived[0].sum[0]", "factor: 1 is invalid", "expected 0.001 or -0.001",
      "a point in W feeds grid_power_kw"], False),
    ("unknown_access", _set(["points", "soc", "access"], "read"),
     ["point 'soc'", 'access: "read" is invalid', "ro, rw"], True),
    ("empty_point_list", _replace("points", []),
     ["profile", "points: [] is invalid", "non-empty list"], True),
    ("sunspec_unknown_model", _add_point({"name": "w", "model": 99999, "point": "W"}),
     ["point 'w'", "model: 99999 is invalid", "no bundled SunSpec definition"], False),
    ("sunspec_unknown_point", _add_point({"name": "w", "model": [103, 113], "point": "Watts"}),
     ["point 'w'", 'point: "Watts" is invalid', "model 103 has no point 'Watts'"], False),
    ("sunspec_point_with_address",
     _add_point({"name": "w", "model": 103, "point": "W", "address": 40083}),
     ["point 'w'", "unknown key 'address'"], True),
]


def _problems(data):
    with pytest.raises(ProfileError) as raised:
        parse_profile(json.dumps(data), PATH)
    return raised.value.problems


@pytest.fixture(scope="module")
def schema_validator():
    with open(registry_dir() / SCHEMA_FILE, encoding="utf-8") as stream:
        schema = json.load(stream)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_base_profile_is_valid(schema_validator):
    profile = parse_profile(json.dumps(BASE), PATH)
    assert profile.name == "custom"
    assert list(schema_validator.iter_errors(BASE)) == []


@pytest.mark.parametrize("case_id,mutate,fragments,schema_rejects", CASES,
                         ids=[case[0] for case in CASES])
def test_rejection(case_id, mutate, fragments, schema_rejects, schema_validator):
    data = copy.deepcopy(BASE)
    mutate(data)
    problems = _problems(data)
    matching = [line for line in problems if all(fragment in line for fragment in fragments)]
    assert matching, f"no problem line holds {fragments}: {problems}"
    assert matching[0].startswith(f"{PATH}: ")
    if schema_rejects:
        assert list(schema_validator.iter_errors(data)), "the JSON Schema accepts it"


@pytest.mark.parametrize("path,value", [
    (["points", "power", "field_scale"], -0.001),   # the device's sign is the opposite
    (["points", "power", "unit"], "VA"),            # a unit validation does not convert
    (["points", "soc", "unit"], ""),
    (["derived", 0, "sum", 0, "factor"], -0.001),
])
def test_unit_conversion_accepted(path, value):
    data = copy.deepcopy(BASE)
    _set(path, value)(data)
    assert parse_profile(json.dumps(data), PATH).name == "custom"


def test_rejection_cases_are_many():
    assert len(CASES) >= 20


def test_invalid_json_names_line_and_column():
    text = '{\n  "name": "custom",\n  "title": "x"\n  "documents": []\n}\n'
    with pytest.raises(ProfileError) as raised:
        parse_profile(text, PATH)
    assert raised.value.problems[0].startswith(f"{PATH}:4:3: invalid JSON")


@pytest.mark.parametrize(("text", "expected"), [
    ('{\n  "name": "custom",\n  "notes": ["a", "b",\n  ]\n}\n',
     f"{PATH}:3:21: invalid JSON: a comma before ']', which JSON does not allow after the "
     "last item; remove that comma"),
    ('{\n  "name": "custom",\n}\n',
     f"{PATH}:2:19: invalid JSON: a comma before '}}', which JSON does not allow after the "
     "last item; remove that comma"),
    ('{\n  // ACME BX-10\n  "name": "custom"\n}\n',
     f"{PATH}:2:3: invalid JSON: a comment, which JSON does not allow; remove it, or move "
     "its text to the profile's notes or a point's description"),
    ('{\n  "name": "custom" /* v1.3 */\n}\n',
     f"{PATH}:2:20: invalid JSON: a comment, which JSON does not allow; remove it, or move "
     "its text to the profile's notes or a point's description"),
])
def test_trailing_comma_and_comment_named(text, expected):
    # The parser's "Expecting value" pointed at the bracket after a trailing comma.
    with pytest.raises(ProfileError) as raised:
        parse_profile(text, PATH)
    assert raised.value.problems == [expected]


def test_number_of_5000_digits_is_a_profile_error():
    # json.loads raised a plain ValueError past the interpreter's digit limit: a traceback.
    with pytest.raises(ProfileError) as raised:
        parse_profile('{"name": ' + "9" * 5000 + "}", PATH)
    problem, = raised.value.problems
    assert problem == (f"{PATH}: invalid JSON: a number has more digits than a profile can "
                       "hold; write a shorter number")


def test_deeply_nested_json_is_a_profile_error():
    # json.loads raised RecursionError: a traceback and exit status 1, not 78.
    with pytest.raises(ProfileError) as raised:
        parse_profile("[" * 100000 + "]" * 100000, PATH)
    problem, = raised.value.problems
    assert problem.startswith(f"{PATH}: invalid JSON: objects and lists are nested more "
                              "deeply than a profile can hold"), problem


def test_settings_file_as_profile_named_as_not_profile():
    # The JSON parser's "invalid JSON at 1:1" asked the user to fix the settings file.
    with pytest.raises(ProfileError) as raised:
        parse_profile("SITE_ID=site\nINVERTER_IP=192.0.2.1\n", PATH)
    problem, = raised.value.problems
    assert problem.startswith(f"{PATH}: not a profile: a profile is a JSON object, and this "
                              "file starts with 'SITE_ID=site\\nINVERTE'; set "
                              "DRIVER_PROFILE_PATH"), problem


def test_profile_with_byte_order_mark_read(tmp_path):
    path = tmp_path / "custom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(BASE).encode())
    assert load_profile(str(path)).name == BASE["name"]


def test_binary_file_as_profile_named_as_not_profile(tmp_path):
    # Python's codec text ("invalid start byte") reached the user, untranslated.
    path = tmp_path / "custom.json"
    path.write_bytes(b"\xff\xfe{\x00")
    with pytest.raises(ProfileError) as raised:
        load_profile(str(path))
    assert raised.value.problems == [
        f"{path}: not a profile: byte 0xff at offset 0 is not UTF-8 text, and a profile is a "
        "UTF-8 JSON file"]


def test_duplicate_json_key_rejected():
    text = json.dumps(BASE).replace('"address": 100,', '"address": 100, "address": 102,')
    with pytest.raises(ProfileError) as raised:
        parse_profile(text, PATH)
    lines = [line for line in raised.value.problems if "'address' appears twice" in line]
    assert lines
    assert "point 'soc'" in lines[0]


@pytest.mark.parametrize(("old", "new", "place"), [
    ('"name": "custom",', '"name": "custom", "name": "other",', "profile"),
    ('"port": 502,', '"port": 502, "port": 503,', "device"),
    ('"version": "1.2"', '"version": "1.2", "version": "1.3"', "documents[0]"),
    ('"first": 500,', '"first": 500, "first": 501,', "device.holes[0]"),
    ('"factor": 0.001', '"factor": 0.001, "factor": 1', "derived[0].sum[0]"),
])
def test_duplicate_json_key_names_its_object(old, new, place):
    # Every object with a "name" key was called a point, the top level too, and any other
    # object was only "object", so the message did not say where to look.
    text = json.dumps(BASE)
    assert old in text
    with pytest.raises(ProfileError) as raised:
        parse_profile(text.replace(old, new, 1), PATH)
    key = new.split('"')[1]
    assert f"{PATH}: {place}: key '{key}' appears twice in one object: keep one" in \
        raised.value.problems


def test_every_problem_listed_at_once():
    data = copy.deepcopy(BASE)
    data["device"]["max_registers"] = 0
    _point(data, "soc")["type"] = "u17"
    _point(data, "power")["order"] = "XYZW"
    problems = _problems(data)
    assert len(problems) == 3


def test_top_level_array_rejected():
    with pytest.raises(ProfileError) as raised:
        parse_profile("[]", PATH)
    assert "holds a JSON array: expected an object" in raised.value.problems[0]


@pytest.mark.parametrize("name", bundled_profiles())
def test_bundled_profile_valid(name, schema_validator):
    profile = load_profile(name)
    with open(profile.path, encoding="utf-8") as stream:
        data = json.load(stream)
    errors = [error.message for error in schema_validator.iter_errors(data)]
    assert errors == []
    assert profile.documents, "each profile names the document it follows"


def test_bundled_profiles_present():
    assert set(bundled_profiles()) >= {"huawei_sun2000", "sma_sunny_tripower",
                                       "victron_multiplus", "fronius_gen24", "sunspec"}


def test_bad_profile_exits_78(tmp_path):
    from bessai_edge.cli import main

    path = tmp_path / "bad.json"
    data = copy.deepcopy(BASE)
    data["device"]["max_registers"] = 0
    path.write_text(json.dumps(data), encoding="utf-8")
    assert main(["profiles", "show", str(path)]) == EX_CONFIG
