from easyflow_cli.runtime.rapl import EnergyMeter


def make_zone(root, name, energy, limit=1000):
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text(f"{energy}\n")
    (zone / "max_energy_range_uj").write_text(f"{limit}\n")
    return zone


def test_no_powercap_means_not_available(tmp_path):
    meter = EnergyMeter(tmp_path / "missing")
    assert not meter.available
    assert meter.joules_between(meter.read(), meter.read()) is None


def test_packages_summed_and_wraparound(tmp_path):
    first = make_zone(tmp_path, "intel-rapl:0", 900, limit=1_000_000_000)
    second = make_zone(tmp_path, "intel-rapl:1", 100)
    make_zone(tmp_path, "intel-rapl:0:0", 5)  # a sub-zone: already inside package 0
    meter = EnergyMeter(tmp_path)
    assert meter.available and len(meter.zones) == 2
    before = meter.read()
    (first / "energy_uj").write_text("2000900\n")  # +2 J
    (second / "energy_uj").write_text("50\n")  # wrapped: 1000 - 100 + 50 = 950 uJ
    assert meter.joules_between(before, meter.read()) == 2.00095
