"""Numbers checked against the phone-number plan (Google's libphonenumber data, the `phonenumbers` package) before
they enter the inventory: a valid number, a mobile one, and, where the row's country says which, of that country's
calling code. A SIM the platform can never get an SMS for (a typo, a landline, a number of another country) would
be counted, sold and cancelled.

The row's country is our own code: a two-letter ISO 3166 code ("ru", "kz") names its region; any other code ("0",
"16": the platform's numbering) needs an entry in POOL_NUMBER_REGIONS ("16:GB,0:RU"); without one only validity and
the mobile type are checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType

from grizzly_pool.store import InventoryError

_MOBILE = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_TYPE_NAMES = {getattr(PhoneNumberType, name): name.lower() for name in dir(PhoneNumberType) if name.isupper()}


@lru_cache(maxsize=1024)
def _calling_code(region: str) -> int:
    return int(phonenumbers.country_code_for_region(region))


def _split(number: int) -> tuple[int, int] | None:
    """(calling code, national number): calling codes are prefix-free, 1-3 digits."""
    text = str(number)
    for size in (1, 2, 3):
        code = int(text[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE and len(text) > size:
            return code, int(text[size:])
    return None


class PhoneCheck:
    """check(number, country) raises InventoryError saying what is wrong; built once from the settings."""

    def __init__(self, regions: Mapping[str, str] | None = None) -> None:
        self.regions = {ours.lower(): region.upper() for ours, region in (regions or {}).items()}
        for ours, region in self.regions.items():
            if _calling_code(region) == 0:
                raise ValueError(f"{ours}:{region}: {region} is not a region the phone-number plan knows")

    def region(self, country: str) -> str | None:
        if country in self.regions:
            return self.regions[country]
        code = country.upper()
        return code if len(code) == 2 and _calling_code(code) else None

    def check(self, number: int, country: str) -> None:
        split = _split(number)
        if split is None:
            raise InventoryError(f"number {number} starts with no calling code")
        code, national = split
        parsed = phonenumbers.PhoneNumber(country_code=code, national_number=national)
        kind = phonenumbers.number_type(parsed)
        if kind == PhoneNumberType.UNKNOWN:
            raise InventoryError(f"number {number} is not a valid phone number (+{code} {national})")
        if kind not in _MOBILE:
            raise InventoryError(f"number {number} is not a mobile number ({_TYPE_NAMES.get(kind, kind)})")
        region = self.region(country)
        if region is None:
            return
        expected = _calling_code(region)
        if expected != code:
            raise InventoryError(
                f"number {number} has calling code +{code}, but country {country} is {region} (+{expected})"
            )
        # a calling code shared by several regions (+7: RU and KZ, +1: NANP): the number's own region decides
        if len(phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]) > 1:
            actual = phonenumbers.region_code_for_number(parsed)
            if actual != region:
                raise InventoryError(f"number {number} is a number of {actual}, but country {country} is {region}")


def phone_check(enabled: bool, regions: Mapping[str, str]) -> PhoneCheck | None:
    """The check the settings ask for (POOL_NUMBER_CHECK, POOL_NUMBER_REGIONS); None when it is off."""
    return PhoneCheck(regions) if enabled else None
