"""Luhn (mod 10) check digits: ICCIDs end with one, and so do the kiosk's voucher codes."""


def check_digit(payload: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:          # doubled: these become odd positions once the digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def valid(number: str) -> bool:
    return (len(number) >= 2 and number.isascii() and number.isdigit()
            and check_digit(number[:-1]) == number[-1])
