"""Korean phone numbers as people write them, as providers want them (E.164), and masked."""

from __future__ import annotations

import pytest

from sotong.phone import last_four, mask_phone, national_format, normalize_korean_phone


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("010-1234-5678", "+821012345678"),
        ("01012345678", "+821012345678"),
        ("010 1234 5678", "+821012345678"),
        ("010.1234.5678", "+821012345678"),
        ("(010) 1234-5678", "+821012345678"),
        ("  010-1234-5678 ", "+821012345678"),
        ("+82 10-1234-5678", "+821012345678"),
        ("+82 010-1234-5678", "+821012345678"),
        ("+821012345678", "+821012345678"),
        ("821012345678", "+821012345678"),
        ("011-234-5678", "+82112345678"),
        ("02-555-0100", "+8225550100"),
        ("02-1234-5678", "+82212345678"),
        ("031-555-0100", "+82315550100"),
        ("064-755-0100", "+82647550100"),
        ("070-1234-5678", "+827012345678"),
        ("080-555-0100", "+82805550100"),
        ("1588-1234", "+8215881234"),
        ("1644-0100", "+8216440100"),
        ("+82 1588-1234", "+8215881234"),
    ],
)
def test_normalize_to_e164(raw: str, e164: str) -> None:
    assert normalize_korean_phone(raw) == e164


@pytest.mark.parametrize(
    "raw",
    [
        "010-123",
        "abc",
        "",
        "+1 415 555 2671",
        "+14155552671",
        "010-1234-56789",
        "012-3456-7890",
        "020-1234-5678",
        "0158812345",
        "1234-5678",
        "010-1234-567a",
        "+82 10-1234",
    ],
)
def test_reject_what_is_not_a_korean_number(raw: str) -> None:
    with pytest.raises(ValueError, match="not a Korean phone number like 010-1234-5678"):
        normalize_korean_phone(raw)


@pytest.mark.parametrize(
    ("e164", "national"),
    [
        ("+821012345678", "010-1234-5678"),
        ("+82112345678", "011-234-5678"),
        ("+8225550100", "02-555-0100"),
        ("+82212345678", "02-1234-5678"),
        ("+82315550100", "031-555-0100"),
        ("+827012345678", "070-1234-5678"),
        ("+8215881234", "1588-1234"),
    ],
)
def test_national_format(e164: str, national: str) -> None:
    assert national_format(e164) == national
    assert normalize_korean_phone(national) == e164


def test_mask_phone_keeps_the_last_four_digits() -> None:
    assert mask_phone("+821012345678") == "+********5678"
    assert mask_phone("010-1234-5678") == "*******5678"
    assert mask_phone("5678") == "****"
    assert mask_phone("") == ""
    assert "1234" not in mask_phone("+821012345678")[:-4]
    assert last_four("+821012345678") == "5678"
