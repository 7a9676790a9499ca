"""RAPL through the real powercap reader, pointed at fake sysfs trees in temporary folders."""

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.fakes import FakeClock
from tests.helpers import ROOT
from tribench.harness.probes import rapl
from tribench.harness.probes.rapl import RaplProbe, Zone, ZoneCounter, delta_uj

RANGE = 262_143_328_850  # a real package max_energy_range_uj


def make_tree(root: Path, zones: dict[str, tuple[str, int]], ranges: dict[str, int | None] | None = None,
              nested: bool = False) -> Path:
    """Zones as in /sys/class/powercap: ``{"intel-rapl:0": ("package-0", energy_uj), ...}``."""
    ranges = ranges or {}
    for zone_id, (name, energy) in zones.items():
        parent = zone_id.rsplit(":", 1)[0] if zone_id.count(":") == 2 else None
        folder = root / parent / zone_id if nested and parent else root / zone_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "name").write_text(f"{name}\n")
        (folder / "energy_uj").write_text(f"{energy}\n")
        max_range = ranges.get(zone_id, RANGE)
        if max_range is not None:
            (folder / "max_energy_range_uj").write_text(f"{max_range}\n")
    (root / "intel-rapl").mkdir(exist_ok=True)  # the control-type folder, not a zone
    return root


def set_energy(root: Path, zone_id: str, energy: int) -> None:
    matches = [p for p in root.rglob(zone_id) if p.is_dir()]
    (matches[0] / "energy_uj").write_text(f"{energy}\n")


TWO_PACKAGES = {
    "intel-rapl:0": ("package-0", 1_000_000),
    "intel-rapl:0:0": ("core", 500_000),
    "intel-rapl:0:1": ("dram", 200_000),
    "intel-rapl:1": ("package-1", 3_000_000),
}


@pytest.mark.parametrize("nested", [False, True])
def test_discover_names_labels_and_ranges(tmp_path, nested):
    make_tree(tmp_path, TWO_PACKAGES, nested=nested)
    (tmp_path / "intel-rapl-mmio:0").mkdir()  # the MMIO copy of package 0 must not be counted twice
    zones = {zone.zone_id: zone for zone in rapl.discover(tmp_path)}
    assert sorted(zones) == ["intel-rapl:0", "intel-rapl:0:0", "intel-rapl:0:1", "intel-rapl:1"]
    assert zones["intel-rapl:0:1"].label == "package-0/dram"
    assert zones["intel-rapl:0:1"].kind == "dram"
    assert zones["intel-rapl:1"].kind == "package"
    assert zones["intel-rapl:0:0"].kind == "core"
    assert zones["intel-rapl:0"].max_range_uj == RANGE


def test_probe_sums_packages_and_reports_dram_in_joules(tmp_path):
    make_tree(tmp_path, TWO_PACKAGES)
    clock = FakeClock()
    probe = RaplProbe(tmp_path, clock)
    probe.open()
    clock.advance(2.0)
    set_energy(tmp_path, "intel-rapl:0", 1_000_000 + 30_000_000)   # +30 J
    set_energy(tmp_path, "intel-rapl:1", 3_000_000 + 10_500_000)   # +10.5 J
    set_energy(tmp_path, "intel-rapl:0:0", 500_000 + 20_000_000)   # core: part of package 0
    set_energy(tmp_path, "intel-rapl:0:1", 200_000 + 4_000_000)    # +4 J
    readings = {reading.name: reading for reading in probe.close()}
    package, dram = readings["cpu_packages"], readings["dram"]
    assert (package.method, package.scope, package.unit) == ("counter", "package", "J")
    assert package.value == 40.5
    assert package.source == "rapl:package-0+rapl:package-1"
    assert package.window_s == 2.0
    assert package.details["zones_j"] == {"package-0": 30.0, "package-0/core": 20.0, "package-0/dram": 4.0,
                                          "package-1": 10.5}
    assert (dram.method, dram.value, dram.source, dram.scope) == ("counter", 4.0, "rapl:package-0/dram", "dram")
    assert not probe._poller.running  # the poller thread was stopped and joined


def test_wraparound_adds_the_counter_range(tmp_path):
    make_tree(tmp_path, {"intel-rapl:0": ("package-0", RANGE - 1_000_000)})
    probe = RaplProbe(tmp_path, FakeClock())
    probe.open()
    set_energy(tmp_path, "intel-rapl:0", 2_500_000)  # wrapped past max_energy_range_uj
    (reading,) = probe.close()
    assert reading.method == "counter"
    assert reading.value == 3.5
    assert reading.details["wraps"] == 1


def test_two_wraps_are_caught_by_the_poller_reads():
    zone = Zone(Path("/x/intel-rapl:0"), "intel-rapl:0", "package-0", "package-0", "package", 1000)
    counter = ZoneCounter(zone, 900)
    for raw in (400, 300, 100):  # 900 -> 400 (wrap), -> 300 (wrap), -> 100 (wrap)
        counter.update(raw)
    assert counter.total_uj == 500 + 900 + 800
    assert counter.wraps == 3


def test_delta_without_a_range_cannot_undo_a_wrap():
    assert delta_uj(10, 25, None) == 15
    assert delta_uj(25, 10, 100) == 85
    assert delta_uj(25, 10, None) is None


def test_a_wrap_with_an_unreadable_range_is_unavailable_not_negative(tmp_path):
    make_tree(tmp_path, {"intel-rapl:0": ("package-0", 5_000_000)}, ranges={"intel-rapl:0": None})
    probe = RaplProbe(tmp_path, FakeClock())
    probe.open()
    set_energy(tmp_path, "intel-rapl:0", 1_000_000)
    (reading,) = probe.close()
    assert reading.method == "unavailable" and reading.value is None
    assert "went backwards (5000000 -> 1000000 µJ)" in reading.reason
    assert "max_energy_range_uj is unreadable" in reading.reason


def test_a_counter_that_does_not_move_is_unavailable_never_zero(tmp_path):
    make_tree(tmp_path, {"intel-rapl:0": ("package-0", 7)})
    probe = RaplProbe(tmp_path, FakeClock())
    probe.open()
    (reading,) = probe.close()
    assert reading.value is None
    assert reading.short_reason == "RAPL counter did not advance"


def test_no_powercap_folder_and_no_zones_say_why(tmp_path):
    probe = RaplProbe(tmp_path / "absent")
    probe.open()
    (reading,) = probe.close()
    assert (reading.name, reading.method, reading.source, reading.scope) == ("cpu_packages", "unavailable",
                                                                             "rapl", "package")
    assert reading.reason.startswith(f"no powercap interface at {tmp_path / 'absent'}")
    assert reading.short_reason == "no RAPL on this machine"
    (tmp_path / "empty").mkdir()
    assert "modprobe intel_rapl_msr" in rapl.describe(tmp_path / "empty")["reason"]


@pytest.fixture
def shared_tree():
    """A tree another user can traverse (pytest's tmp_path is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="tribench-rapl-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root)


UNPRIVILEGED_READ = """
import json, os, sys
from pathlib import Path
from tribench.harness.probes import rapl
from tribench.harness.probes.rapl import RaplProbe
if os.geteuid() == 0:  # drop root, as a user without it would run
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
root = Path(sys.argv[1])
probe = RaplProbe(root)
probe.open()
print(json.dumps([reading.to_dict() for reading in probe.close()] + [rapl.describe(root)]))
"""


def _read_as_unprivileged(root: Path) -> list:
    """Read the tree in a fresh single-threaded interpreter that drops root first (no fork of pytest)."""
    done = subprocess.run([sys.executable, "-c", UNPRIVILEGED_READ, str(root)], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def test_permission_denied_is_unavailable_with_the_fix(shared_tree):
    make_tree(shared_tree, {"intel-rapl:0": ("package-0", 123)})
    for folder in shared_tree.iterdir():
        folder.chmod(0o755)
        for item in folder.iterdir():
            item.chmod(0o444)
    (shared_tree / "intel-rapl:0" / "energy_uj").chmod(0o400)  # root-only, as since Linux 5.10

    reading, described = _read_as_unprivileged(shared_tree)
    assert reading["method"] == "unavailable" and reading["value"] is None
    assert reading["reason"].startswith(f"permission denied reading {shared_tree}/intel-rapl:0/energy_uj")
    assert "readable by root only" in reading["reason"]
    assert "run as root" in reading["reason"]
    assert f"sudo chmod o+r {shared_tree}/intel-rapl:*/energy_uj" in reading["reason"]
    assert reading["short_reason"] == "RAPL energy_uj is root-only"
    assert described["available"] is False and described["reason"] == reading["reason"]


def test_describe_lists_the_domains(tmp_path):
    make_tree(tmp_path, TWO_PACKAGES)
    described = rapl.describe(tmp_path)
    assert described["available"] is True
    assert described["domains"] == ["rapl:package-0", "rapl:package-0/core", "rapl:package-0/dram",
                                    "rapl:package-1"]
