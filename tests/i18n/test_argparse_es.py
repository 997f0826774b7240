"""argparse's own texts (usage, option groups, errors) follow LANG like our messages."""

import argparse
import re
import subprocess

from tests.conftest import REPO, bessai_command, require_commands

SPANISH = {"PATH": "/usr/bin:/bin", "LANG": "es_CL.UTF-8"}
ENGLISH = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def _bessai(args, env):
    return subprocess.run([*bessai_command(), *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_help_top_level_spanish():
    result = _bessai(["--help"], SPANISH)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("uso: bessai ")
    assert "\nargumentos posicionales:\n" in result.stdout
    assert "\nopciones:\n" in result.stdout
    assert "mostrar esta ayuda y salir" in result.stdout
    assert "mostrar la versión y salir" in result.stdout
    assert "usage:" not in result.stdout
    assert "show this help message" not in result.stdout


def test_help_subcommand_spanish():
    result = _bessai(["spool", "tail", "--help"], SPANISH)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("uso: bessai spool tail ")
    assert "\nopciones:\n" in result.stdout
    assert "options:" not in result.stdout


def test_unknown_option_shows_command_usage():
    # argparse reported an option of another command under the top-level usage.
    result = _bessai(["check", "--cycles", "3"], ENGLISH)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: bessai check "), result.stderr
    assert result.stderr.endswith("bessai check: error: unrecognized arguments: --cycles 3\n")
    spanish = _bessai(["check", "--cycles", "3"], SPANISH)
    assert spanish.stderr.startswith("uso: bessai check "), spanish.stderr


def test_usage_error_bad_integer_spanish():
    result = _bessai(["run", "--cycles", "x"], SPANISH)
    assert result.returncode == 2
    assert result.stderr.startswith("uso: bessai run ")
    assert "bessai run: error: argumento --cycles: " in result.stderr
    assert "argument --cycles" not in result.stderr


def test_usage_error_required_group_spanish():
    result = _bessai(["simulate"], SPANISH)
    assert result.returncode == 2
    assert "error: se requiere uno de los argumentos --profile --capture" in result.stderr


def test_usage_error_invalid_choice_spanish():
    result = _bessai(["nope"], SPANISH)
    assert result.returncode == 2
    assert "bessai: error: argumento COMANDO: valor no válido: 'nope'" in result.stderr


def test_misspelt_command_suggests_the_likely_one():
    # argparse listed the commands but left the user to find the typo.
    english = _bessai(["chek", "--env-file", "x.env"], ENGLISH)
    spanish = _bessai(["chek"], SPANISH)
    assert english.returncode == 2
    assert "bessai: error: unknown command 'chek'; did you mean check?" in english.stderr
    assert spanish.returncode == 2
    assert "bessai: error: comando desconocido 'chek'; ¿quiso decir check?" in spanish.stderr


def test_usage_error_missing_argument_spanish():
    result = _bessai(["profiles", "show"], SPANISH)
    assert result.returncode == 2
    assert "faltan los siguientes argumentos obligatorios: NOMBRE" in result.stderr


def test_help_placeholders_spanish():
    # The placeholders stayed English (--env-file FILE) beside Spanish help texts.
    spanish = _bessai(["run", "--help"], {**SPANISH, "COLUMNS": "200"})
    english = _bessai(["run", "--help"], {**ENGLISH, "COLUMNS": "200"})
    assert spanish.stdout.startswith("uso: bessai run [-h] [--env-file ARCHIVO] [--cycles N]")
    assert "leer la configuración de ARCHIVO (sintaxis" in spanish.stdout
    assert "FILE" not in spanish.stdout
    assert english.stdout.startswith("usage: bessai run [-h] [--env-file FILE] [--cycles N]")


def test_simulate_and_spool_placeholders_spanish():
    simulate = _bessai(["simulate", "--help"], {**SPANISH, "COLUMNS": "200"})
    spool = _bessai(["spool", "--help"], SPANISH)
    assert "[--port PUERTO]" in simulate.stdout
    assert "[--seed SEMILLA]" in simulate.stdout
    assert "[--exception DIR[-ÚLTIMA]=CÓDIGO]" in simulate.stdout
    assert spool.stdout.startswith("uso: bessai spool [-h] ACCIÓN ...")


def test_help_english_without_spanish_lang():
    result = _bessai(["--help"], ENGLISH)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: bessai ")
    assert "show this help message and exit" in result.stdout


def _msgids(path):
    """Return the msgids xgettext extracts from one Python file."""
    pot = subprocess.run(
        ["xgettext", "--language=Python", "--keyword=_", "--keyword=ngettext:1,2",
         "--no-wrap", "--output=-", str(path)],
        capture_output=True, text=True, check=True, timeout=60).stdout
    return set(re.findall(r'^msgid(?:_plural)? "(.+)"$', pot, flags=re.MULTILINE))


def test_argparse_msgids_match_running_python():
    # The committed list must hold every message this Python's argparse can print,
    # or a newer Python brings English lines back into Spanish output.
    require_commands("xgettext")
    listed = _msgids(REPO / "tools" / "argparse_msgids.py")
    live = _msgids(argparse.__file__)
    assert live - listed == set()


def test_command_help_lower_case_without_period_english():
    result = _bessai(["--help"], {**ENGLISH, "COLUMNS": "200"})   # one line per command
    assert result.returncode == 0, result.stderr
    commands = re.findall(r"^    (\w+) +(\S.*)$", result.stdout, re.M)
    assert [name for name, _help in commands] == ["run", "check", "simulate", "profiles",
                                                  "spool", "forward"]
    for name, text in commands:
        assert text[0].islower(), (name, text)
        assert not text.endswith("."), (name, text)
