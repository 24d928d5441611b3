"""ArchConfig: presets, validation, loading from TOML/JSON files."""

import json

import pytest

from hw.arch import PRESETS, ArchConfig, load_arch, preset
from hw.errors import ConfigError


@pytest.mark.parametrize("name", ["tiny", "small", "s2chip", "s2board"])
def test_presets_exist_and_validate(name):
    arch = preset(name)
    assert arch.name == name
    assert arch.sram_bytes % arch.sram_banks == 0
    assert arch.macs_per_cycle == arch.mac_rows * arch.mac_cols


def test_reference_numbers():
    small, s2 = preset("small"), preset("s2chip")
    assert (small.mesh_cols, small.mesh_rows) == (4, 4)
    assert small.sram_bytes == 128 * 1024
    assert small.macs_per_cycle == 64
    assert s2.tiles == 152
    assert s2.dram_ports == 2
    assert preset("s2board").pes == 48 * 152
    # small: 8 banks, the GEMM/MLP layouts' regions are quarters of two banks each
    assert (small.sram_banks, small.regions, small.region_bytes) == (8, 4, 32 * 1024)
    assert preset("tiny").region_bytes == preset("tiny").bank_bytes
    # the DRAM queue holds latency x bandwidth in 64-byte multicast-read requests
    for arch in (small, s2):
        assert arch.dram_queue * 64 >= arch.dram_latency * arch.dram_bytes_per_cycle


def test_unknown_preset_names_the_choices():
    with pytest.raises(ConfigError, match="unknown architecture preset 'huge'.*tiny"):
        preset("huge")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mac_rows", 3, "mac_rows must be one of 1, 2, 4, 8, 16, not 3"),
        ("sram_bytes", 1000, "sram_bytes must be a power of two"),
        ("mesh_cols", 0, "mesh_cols must be in 1..63, not 0"),
        ("semaphores", 3, "semaphores must be a power of two"),
        ("vcs", 1, "vcs must be 2"),
        ("loop_depth", 2, "loop_depth must be in 3..4, not 2"),
        ("mac_cols", "16", "mac_cols must be an integer, not '16'"),
        ("dram_bytes", 17, "dram_bytes must be a multiple of 16"),
        ("dram_queue", 24, "dram_queue must be a power of two in 2..256, not 24"),
    ],
)
def test_invalid_fields_are_named(field, value, message):
    with pytest.raises(ConfigError, match=message):
        PRESETS["small"].replace(**{field: value})


def test_replace_rejects_unknown_key():
    with pytest.raises(ConfigError, match="unknown key 'macs'"):
        PRESETS["small"].replace(macs=4)


def test_frozen():
    with pytest.raises(AttributeError):
        PRESETS["small"].mac_rows = 8  # type: ignore[misc]


def test_load_toml_with_base(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('base = "tiny"\nmac_rows = 8\nmac_cols = 8\n')
    arch = load_arch(path)
    assert arch.name == "mine"
    assert (arch.mac_rows, arch.mac_cols) == (8, 8)
    assert arch.sram_bytes == PRESETS["tiny"].sram_bytes


def test_load_json(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"name": "j", "sram_bytes": 65536}))
    arch = load_arch(path)
    assert arch == ArchConfig(name="j", sram_bytes=65536)


def test_load_rejects_unknown_keys(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("mac_rowz = 8\n")
    with pytest.raises(ConfigError, match="unknown key 'mac_rowz'"):
        load_arch(path)


def test_load_rejects_malformed_and_missing(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("mac_rows = = 8\n")
    with pytest.raises(ConfigError, match="malformed"):
        load_arch(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_arch(tmp_path / "nope.toml")


def test_load_rejects_bad_value_in_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"base": "small", "mac_cols": 5}))
    with pytest.raises(ConfigError, match="mac_cols must be one of 4, 8, 16, not 5"):
        load_arch(path)
