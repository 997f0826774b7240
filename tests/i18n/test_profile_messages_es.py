"""Profile and spool errors of `run`, `profiles` and `spool`, and `check`'s output, follow LANG."""

import subprocess
import sys

from bessai_edge.errors import EX_CONFIG
from bessai_edge.spool import Spool
from bessai_edge.spool.segments import segment_name
from tests.conftest import bessai_command
from tests.spool.helpers import layout_record


def _bessai(args, lang, **variables):
    env = {"PATH": "/usr/bin:/bin", "LANG": lang, **variables}
    return subprocess.run([*bessai_command(), *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_run_profile_directory_spanish(tmp_path):
    result = _bessai(["run"], "es_CL.UTF-8", SITE_ID="site1", INVERTER_IP="127.0.0.1",
                     DRIVER_PROFILE_PATH=str(tmp_path), SPOOL_DIR=str(tmp_path))
    assert result.returncode == EX_CONFIG
    assert result.stderr == (
        f"bessai: DRIVER_PROFILE_PATH='{tmp_path}' es inválido: perfil '{tmp_path}': "
        f"{tmp_path} es un directorio sin archivos JSON: indique la ruta de un archivo JSON "
        f"de perfil o el nombre de un perfil incluido\n")


def test_profiles_show_directory_english(tmp_path):
    (tmp_path / "acme.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("")
    result = _bessai(["profiles", "show", str(tmp_path)], "C.UTF-8")
    assert result.returncode == EX_CONFIG
    assert (f"{tmp_path} is a directory: give the path of a profile JSON file in it "
            "(acme.json) or a bundled profile name") in result.stderr
    assert "file not found" not in result.stderr


def test_run_profile_not_found_spanish():
    result = _bessai(["run"], "es_CL.UTF-8", SITE_ID="site1", INVERTER_IP="127.0.0.1",
                     DRIVER_PROFILE_PATH="huawei_sun2001")
    assert result.returncode == EX_CONFIG
    assert result.stderr.startswith(
        "bessai: DRIVER_PROFILE_PATH='huawei_sun2001' es inválido: perfil 'huawei_sun2001': "
        "archivo no encontrado (se buscó en huawei_sun2001, ")
    assert "huawei_sun2000" in result.stderr


def test_profiles_show_invalid_json_spanish(tmp_path):
    profile = tmp_path / "broken.json"
    profile.write_text('{"name": "broken",\n  "title": }\n', encoding="utf-8")
    result = _bessai(["profiles", "show", str(profile)], "es_CL.UTF-8")
    assert result.returncode == EX_CONFIG
    assert result.stderr == (f"bessai: {profile}:2:12: JSON inválido: Expecting value; "
                             f"corrija la sintaxis en esa línea y columna\n")


def test_profiles_show_invalid_fields_spanish(tmp_path):
    profile = tmp_path / "bad.json"
    profile.write_text(
        '{"name": "bad", "title": "Bad", "colour": 1,'
        ' "documents": [{"title": "T", "version": "1", "publisher": "P"}],'
        ' "device": {"unit_id": 300, "port": 502, "max_registers": 100, "max_gap": 0,'
        ' "quiet_after_connect_s": 0, "min_request_interval_s": 0, "request_timeout_s": 1},'
        ' "points": [{"name": "p", "description": "d", "address": 1, "type": "u17"}]}',
        encoding="utf-8")
    result = _bessai(["profiles", "show", str(profile)], "es_CL.UTF-8")
    lines = result.stderr.splitlines()
    assert result.returncode == EX_CONFIG
    assert f"bessai: {profile}: perfil: clave desconocida 'colour': " in lines[0]
    assert f"bessai: {profile}: device: unit_id: 300 es inválido: se espera un entero de 0 " \
        "a 247" in lines
    assert any(line.startswith(f"bessai: {profile}: punto 'p': type: \"u17\" es inválido: "
                               "se espera uno de u16, ") for line in lines)


def test_spool_missing_directory_spanish(tmp_path):
    missing = tmp_path / "absent"
    result = _bessai(["spool", "stats", "--dir", str(missing)], "es_CL.UTF-8")
    assert result.returncode == EX_CONFIG
    assert result.stderr == f"bessai: el directorio de spool {missing} no existe: revise --dir\n"


def test_profiles_show_duplicate_name_and_json_values_spanish(tmp_path):
    profile = tmp_path / "bad.json"
    profile.write_text(
        '{"name": "bad", "title": "Bad",'
        ' "documents": [{"title": "T", "version": "1", "publisher": "P"}],'
        ' "device": {"unit_id": 1, "port": 502, "max_registers": 100, "max_gap": 0,'
        ' "quiet_after_connect_s": 0, "min_request_interval_s": 0, "request_timeout_s": 1},'
        ' "points": [{"name": "p", "description": "d", "address": true, "type": "u16"},'
        ' {"name": "q", "description": "d", "address": 2, "type": "u16"},'
        ' {"name": "p", "description": "d", "address": 3, "type": "u16", "unit": null},'
        ' {"name": "w", "model": 103, "point": "Watts"}]}', encoding="utf-8")
    result = _bessai(["profiles", "show", str(profile)], "es_CL.UTF-8")
    lines = result.stderr.splitlines()
    assert result.returncode == EX_CONFIG
    assert (f"bessai: {profile}: punto 'p': address: true es inválido: se espera un entero "
            "de 0 a 65535") in lines
    assert (f"bessai: {profile}: points[2]: name: \"p\" es inválido: points[0] ya tiene este "
            "nombre; cambie el nombre de uno de los dos, porque cada punto necesita un nombre "
            "propio") in lines
    assert f'bessai: {profile}: points[2]: unit: null es inválido: se espera un texto como "kW"' \
        in lines
    assert any(line.startswith(
        f"bessai: {profile}: punto 'w': point: \"Watts\" es inválido: se espera un punto de "
        "cada modelo listado: el modelo 103 no tiene el punto 'Watts'; puntos del modelo: ")
        for line in lines), lines


def test_profiles_show_unknown_unit_role_spanish():
    result = _bessai(["profiles", "show", "huawei_sun2000", "--unit", "vebus=246"],
                     "es_CL.UTF-8")
    assert result.returncode == EX_CONFIG
    assert result.stderr == (
        "bessai: el perfil huawei_sun2000 no tiene roles de unidad, así que MODBUS_UNIT_VEBUS "
        "no aplica: quite la configuración, y defina el unit id del equipo con "
        "MODBUS_SLAVE_ID\n")


def _damaged_spool(directory):
    """Write a spool of three records whose second line is power-cut damage."""
    with Spool(directory) as spool:
        for number in range(3):
            spool.append(layout_record(number))
    path = directory / segment_name(1)
    data = path.read_bytes()
    offset = data.index(b"\n") + 1
    path.write_bytes(data[:offset] + b"\0" * 10 + data[offset + 10:])
    return segment_name(1), offset


def test_spool_tail_and_check_damage_spanish(tmp_path):
    name, offset = _damaged_spool(tmp_path)
    length = (tmp_path / name).read_bytes()[offset:].index(b"\n")
    reason = f"10 bytes NUL en una línea de {length} bytes (daño por corte de energía)"
    tail = _bessai(["spool", "tail", "--dir", str(tmp_path)], "es_CL.UTF-8")
    assert tail.returncode == 1
    assert tail.stderr == (f"bessai: se saltó una línea dañada: {name} desplazamiento "
                           f"{offset}: {reason}\n")
    check = _bessai(["spool", "check", "--dir", str(tmp_path)], "es_CL.UTF-8")
    assert check.returncode == 1
    assert check.stdout.splitlines() == [
        f"{name} desplazamiento {offset}: {reason}",
        f"falta el número de secuencia 2: está en una línea mala listada arriba ({name} "
        f"desplazamiento {offset})",
        f"se revisaron 2 registros en 1 segmento ({(tmp_path / name).stat().st_size} bytes): "
        "1 línea mala, ningún archivo apartado",
    ]
    stats = _bessai(["spool", "stats", "--dir", str(tmp_path)], "es_CL.UTF-8")
    assert "líneas dañadas         1 (bessai spool check las lista)\n" in stats.stdout


def test_spool_tail_negative_lines_spanish(tmp_path):
    result = _bessai(["spool", "tail", "-n", "-1", "--dir", str(tmp_path)], "es_CL.UTF-8")
    assert result.returncode == 2
    assert result.stderr.endswith(
        "bessai spool tail: error: argumento -n/--lines: se espera un número entero de al "
        "menos 0, se recibió '-1'\n")


def test_spool_in_use_spanish(tmp_path):
    with Spool(tmp_path):
        result = _bessai(["spool", "check", "--repair", "--dir", str(tmp_path)], "es_CL.UTF-8")
    assert result.returncode == EX_CONFIG
    assert result.stderr == (f"bessai: el directorio de spool {tmp_path} está en uso por otro "
                             "proceso bessai: detenga primero el servicio (systemctl stop "
                             "bessai), o termine el otro proceso (pgrep -af "
                             "'bessai(_edge)? run')\n")


def test_check_ok_label_spanish():
    result = _bessai(["check"], "es_CL.UTF-8", SITE_ID="site1", BESSAI_MODE="simulator",
                     DRIVER_PROFILE_PATH="huawei_sun2000")
    assert result.returncode == 0, result.stderr
    assert ("  [ok] Se leyeron los 47 puntos; el equipo responde como espera el perfil "
            "huawei_sun2000.\n") in result.stdout


def test_command_help_lower_case_without_period_spanish():
    result = _bessai(["--help"], "es_CL.UTF-8")
    assert result.returncode == 0
    assert "    check     revisar la conexión con cada equipo" in result.stdout
    assert "    simulate  servir un equipo simulado" in result.stdout
    assert "    spool     inspeccionar el spool de telemetría" in result.stdout
    assert "capacitación." not in result.stdout
    assert "validación." not in result.stdout


def test_check_diagnosis_hints_spanish():
    # Pure diagnosis in a child process, so LANG selects the catalog as it does for users.
    script = (
        "from bessai_edge.diagnosis import Observation, diagnose\n"
        "base = dict(endpoint='192.0.2.1:502', port=502, unit_id=7, profile='sunspec')\n"
        "print(diagnose(Observation(**base, request_outcomes=['exception_11']))[0].message)\n"
        "print(diagnose(Observation(**base, connect_error_kind='refused'))[0].message)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, env={"PATH": "/usr/bin:/bin", "LANG": "es_CL.UTF-8"})
    assert result.returncode == 0, result.stderr
    for english in ("through the inverter's own access point", "on some dongles", "meter 200",
                    "Settings > Services", "Communication > Modbus", "web interface"):
        assert english not in result.stdout
    assert "(medidor 200)" in result.stdout
    assert "SMA:" in result.stdout
