"""Profile and spool errors of `run`, `profiles` and `spool` follow LANG."""

import subprocess

from bessai_edge.errors import EX_CONFIG
from tests.conftest import bessai_command


def _bessai(args, lang, **variables):
    env = {"PATH": "/usr/bin:/bin", "LANG": lang, **variables}
    return subprocess.run([*bessai_command(), *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_run_profile_directory_spanish(tmp_path):
    result = _bessai(["run"], "es_CL.UTF-8", SITE_ID="site1", INVERTER_IP="127.0.0.1",
                     DRIVER_PROFILE_PATH=str(tmp_path))
    assert result.returncode == EX_CONFIG
    assert result.stderr == (
        f"bessai: DRIVER_PROFILE_PATH='{tmp_path}' es inválido: perfil '{tmp_path}': "
        f"{tmp_path} es un directorio: indique la ruta de un archivo JSON de perfil (como "
        f"{tmp_path}/huawei_sun2000.json) o el nombre de un perfil incluido\n")


def test_profiles_show_directory_english(tmp_path):
    result = _bessai(["profiles", "show", str(tmp_path)], "C.UTF-8")
    assert result.returncode == EX_CONFIG
    assert f"{tmp_path} is a directory: give the path of a profile JSON file" in result.stderr
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
    assert f"bessai: {profile}: profile: clave desconocida 'colour': " in lines[0]
    assert f"bessai: {profile}: device: unit_id: 300 es inválido: se espera un entero de 0 " \
        "a 247" in lines
    assert any(line.startswith(f"bessai: {profile}: punto 'p': type: 'u17' es inválido: "
                               "se espera uno de u16, ") for line in lines)


def test_spool_missing_directory_spanish(tmp_path):
    missing = tmp_path / "absent"
    result = _bessai(["spool", "stats", "--dir", str(missing)], "es_CL.UTF-8")
    assert result.returncode == EX_CONFIG
    assert result.stderr == (f"bessai: el directorio de spool {missing} no existe: créelo, "
                             f"con dueño el usuario bessai, o defina SPOOL_DIR\n")
