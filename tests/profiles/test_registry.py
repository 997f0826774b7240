"""Finding profiles: bare names, registry/ paths, files, and the registry directory."""

import shutil

import pytest

from bessai_edge import core
from bessai_edge.errors import ProfileError
from bessai_edge.profile import load_profile, registry, resolve_profile_path
from bessai_edge.profile.fields import TYPE_REGISTERS, TYPES


def test_bare_name(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert resolve_profile_path("huawei_sun2000") == registry.registry_dir() / "huawei_sun2000.json"


def test_registry_relative_path_from_any_directory(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    path = resolve_profile_path("registry/victron_multiplus.json")
    assert path == registry.registry_dir() / "victron_multiplus.json"


def test_existing_file_used_as_given(tmp_path):
    copy = tmp_path / "site.json"
    shutil.copy(registry.registry_dir() / "sma_sunny_tripower.json", copy)
    assert resolve_profile_path(str(copy)) == copy
    assert load_profile(str(copy)).path == str(copy)


def test_registry_directory_from_environment(monkeypatch, tmp_path):
    shutil.copy(registry.registry_dir() / "huawei_sun2000.json", tmp_path / "mine.json")
    monkeypatch.setenv(registry.ENVIRONMENT_VARIABLE, str(tmp_path))
    assert registry.bundled_profiles() == ["mine"]
    assert load_profile("mine").name == "huawei_sun2000"


def test_missing_profile_lists_bundled(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProfileError) as raised:
        resolve_profile_path("fronius_gen23")
    message = str(raised.value)
    assert "file not found" in message
    assert "fronius_gen24" in message


@pytest.mark.parametrize("name, meant", [
    ("fronius_gen23", "fronius_gen24"), ("huawei", "huawei_sun2000"),
    ("victron_gx", "victron_multiplus"), ("SMA", "sma_sunny_tripower"), ("sunspek", "sunspec"),
    ("growatt", None),
])
def test_missing_profile_suggests_closest(monkeypatch, tmp_path, name, meant):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProfileError) as raised:
        resolve_profile_path(name)
    message = str(raised.value)
    if meant is None:
        assert "did you mean" not in message
    else:
        assert message.endswith(f"; did you mean {meant}?")


def test_empty_name_rejected():
    with pytest.raises(ProfileError):
        resolve_profile_path("  ")


def test_types_match_core():
    assert TYPES == core.TYPES
    assert TYPE_REGISTERS == core.TYPE_WORDS


def test_sunspec_definitions_shipped_with_notice():
    sunspec_dir = registry.sunspec_dir()
    assert (sunspec_dir / "NOTICE.txt").is_file()
    assert (sunspec_dir / "LICENSE-Apache-2.0.txt").is_file()
    assert len(list(sunspec_dir.glob("model_*.json"))) > 100


def test_service_profile_in_tmp_hint(monkeypatch):
    # The service reported "file not found" for a file the shell saw in /tmp.
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef")   # set by systemd
    with pytest.raises(ProfileError) as raised:
        resolve_profile_path("/tmp/bessai-no-such-profile.json")
    assert "the service has a private /tmp (PrivateTmp=yes)" in str(raised.value)

    monkeypatch.delenv("INVOCATION_ID")
    with pytest.raises(ProfileError) as raised:
        resolve_profile_path("/tmp/bessai-no-such-profile.json")
    assert "private /tmp" not in str(raised.value)
