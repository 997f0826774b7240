"""Spanish CLI messages: the catalog covers every message, and LANG=es selects it."""

import subprocess

from bessai_edge.errors import EX_CONFIG
from tests.conftest import REPO, bessai_command, require_commands


def test_catalog_translates_every_message():
    require_commands("xgettext", "msgcmp", "msgfmt")
    result = subprocess.run([str(REPO / "tools" / "update-po.sh"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_run_bad_settings_in_spanish(tmp_path):
    result = subprocess.run(
        [*bessai_command(), "run"], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "LANG": "es_CL.UTF-8", "SITE_ID": "a b",
             "INVERTER_PORT": "0", "DRIVER_PROFILE_PATH": "huawei_sun2000",
             "INVERTER_IP": "192.168.1.100", "SPOOL_DIR": str(tmp_path)})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == EX_CONFIG
    assert lines == [
        "bessai: SITE_ID='a b' es inválido: se espera de 1 a 64 letras ASCII (sin tildes ni ñ), "
        "dígitos, '.', '_' o '-', empezando con una letra o un dígito",
        "bessai: INVERTER_PORT='0' es inválido: se espera un entero de 1 a 65535",
    ]


def test_missing_settings_file_reason_in_spanish(tmp_path):
    # The reason came from the C library in English: "No such file or directory".
    missing = tmp_path / "noexiste.env"
    result = subprocess.run(
        [*bessai_command(), "run", "--env-file", str(missing)], capture_output=True,
        text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "LANG": "es_CL.UTF-8"})
    assert result.returncode == EX_CONFIG
    assert "no existe el archivo o directorio" in result.stderr, result.stderr
    assert "No such file" not in result.stderr
