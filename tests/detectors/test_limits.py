"""Limits as data: lookups by standard, code, averaging, date, condition; O2 correction."""

from datetime import date

import pytest

from detectors.limits import LimitTable, o2_correct, standard_for


@pytest.fixture(scope="module")
def table() -> LimitTable:
    return LimitTable.load()


def test_ambient_grades(table: LimitTable) -> None:
    on = date(2017, 1, 1)
    assert table.applicable("GB3095-2012/II", "a34004", "24h", on).value == 75
    assert table.applicable("GB3095-2012/I", "a34004", "24h", on).value == 35
    assert table.applicable("GB3095-2012/II", "a21026", "1h", on).value == 500
    assert table.applicable("GB3095-2012/II", "a21005", "24h", on).unit == "mg/m3"
    assert table.applicable("GB3095-2012/II", "a34004", "1h", on) is None


def test_valid_from_and_regional_adoption(table: LimitTable) -> None:
    assert table.applicable("GB3095-2012/II", "a34004", "24h", date(2015, 6, 1)) is None
    lim = table.applicable("GB3095-2012/II", "a34004", "24h", date(2015, 6, 1),
                           adopted_from=date(2013, 1, 1))
    assert lim is not None and lim.value == 75


def test_emission_standards_and_o2(table: LimitTable) -> None:
    on = date(2020, 1, 1)
    coal = table.applicable("GB13223-2011/coal-existing", "a21026", "1h", on)
    assert (coal.value, coal.o2_ref) == (200, 6)
    assert table.applicable("GB13223-2011/coal-new", "a21026", "1h", on).value == 100
    gt = table.applicable("GB13223-2011/gas-turbine", "a21002", "1h", on)
    assert (gt.value, gt.o2_ref) == (50, 15)
    assert table.applicable("GB13223-2011/ultra-low", "a34013", "1h", on).value == 10
    assert table.applicable("GB13223-2011/coal-existing", "a21026", "1h",
                            date(2013, 1, 1)) is None


def test_effluent_conditional_row(table: LimitTable) -> None:
    on = date(2020, 1, 1)
    assert table.applicable("GB18918-2002/1A", "w21003", "24h", on).value == 5
    cold = table.applicable("GB18918-2002/1A", "w21003", "24h", on, {"w01010": 10.0})
    assert cold.value == 8
    assert table.applicable("GB18918-2002/1A", "w21011", "24h", on).value == 0.5
    assert table.applicable("GB18918-2002/1A", "w01018", "24h", on).value == 50


def test_defaults_by_st_and_registry() -> None:
    assert standard_for("22") == "GB3095-2012/II"
    assert standard_for("31") == "GB13223-2011/coal-existing"
    assert standard_for("32") == "GB18918-2002/1A"
    assert standard_for("31", "GB13223-2011/ultra-low") == "GB13223-2011/ultra-low"
    with pytest.raises(KeyError):
        standard_for("99")


def test_o2_correction() -> None:
    assert o2_correct(100.0, 9.0, 6.0) == pytest.approx(125.0)
    assert o2_correct(100.0, 20.95, 6.0) is None
    assert o2_correct(100.0, 15.0, 15.0) == pytest.approx(100.0)


def test_unknown_standard(table: LimitTable) -> None:
    with pytest.raises(KeyError):
        table.for_standard("GB0000")
