"""Numbers checked against the phone-number plan before they enter the inventory."""

from __future__ import annotations

import pytest
from grizzly_common.settings import SettingsError
from grizzly_pool.phones import PhoneCheck
from grizzly_pool.settings import Settings
from grizzly_pool.store import InventoryError

CHECK = PhoneCheck({"16": "GB", "0": "RU"})


@pytest.mark.parametrize(
    ("number", "country"),
    [
        (79001234567, "ru"),
        (79001234567, "0"),
        (77011234567, "kz"),
        (447400123456, "16"),
        (4915112345678, "de"),
        (380501234567, "ua"),
        (447911123456, "99"),  # 99: no region known, so only valid and mobile
    ],  # fmt: skip
)
def test_valid_mobile_numbers_of_the_rows_country_pass(number: int, country: str) -> None:
    CHECK.check(number, country)


@pytest.mark.parametrize(
    ("number", "country", "error"),
    [
        (79001234567, "kz", "is a number of RU, but country kz is KZ"),
        (447911123456, "ru", "has calling code +44, but country ru is RU (+7)"),
        (447911123456, "16", "is a number of GG, but country 16 is GB"),
        (447911123456, "0", "has calling code +44, but country 0 is RU (+7)"),
        (74951234567, "ru", "is not a mobile number (fixed_line)"),
        (447700900123, "16", "is not a valid phone number (+44 7700900123)"),
        (79, "ru", "is not a valid phone number"),
        (999123456789, "ru", "starts with no calling code"),
    ],
)
def test_invalid_landline_and_foreign_numbers_are_refused_naming_why(number: int, country: str, error: str) -> None:
    with pytest.raises(InventoryError, match=error.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        CHECK.check(number, country)


def test_settings_read_the_mode_and_the_regions() -> None:
    base = {"POOL_ADMIN_TOKEN": "admin-token-0001", "POOL_API_TOKEN": "pool-api-token-0001"}
    settings = Settings.from_env({**base, "POOL_NUMBER_REGIONS": "16:gb, 0:RU"})
    assert settings.number_check is True and settings.number_regions == {"16": "GB", "0": "RU"}
    assert Settings.from_env({**base, "POOL_NUMBER_CHECK": "off"}).number_check is False
    for bad in ({"POOL_NUMBER_CHECK": "maybe"}, {"POOL_NUMBER_REGIONS": "16"}, {"POOL_NUMBER_REGIONS": "16:GBR"}):
        with pytest.raises(SettingsError):
            Settings.from_env({**base, **bad})
    with pytest.raises(ValueError, match="XX is not a region"):
        PhoneCheck({"9": "XX"})
