"""The local admin secret is compared in constant time (``hmac.compare_digest``), so that the
time of a refusal does not tell an attacker on the machine anything about the guess.

A plain ``==`` gives the same answers, so only time tells them apart. ``==`` answers a guess of
the wrong length at once, and stops at the first differing byte; ``compare_digest`` always walks
the whole secret. Measured on the real ``AdminAccess.matches`` with an 8 MiB secret (the
server's own is 43 characters, far too short to time in a test): a one-character guess against
a guess wrong only in its last character, the fastest of 31 interleaved runs of each (the one a
loaded machine disturbed least), as a ratio. Measured on a loaded 2-core machine: 0.5-1.0 with
``compare_digest`` (the longer guess also pays its encoding), under 0.005 with ``==`` (the
secret's bytes are kept, so ``==`` on a short guess does nothing at all).
"""

from __future__ import annotations

import time

from embedded_registry.admin import AdminAccess

SIZE = 8 << 20
RUNS = 31


def _fastest(access: AdminAccess, guesses: tuple[str, str]) -> tuple[float, float]:
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(RUNS):
        for guess, sink in zip(guesses, times, strict=True):
            started = time.perf_counter()
            assert not access.matches(guess)
            sink.append(time.perf_counter() - started)
    return min(times[0]), min(times[1])


def test_a_refusal_takes_as_long_whatever_the_guess() -> None:
    secret = "s" * SIZE
    access = AdminAccess(secret=secret)
    assert access.matches(secret)
    short, wrong_last = "x", secret[:-1] + "x"
    fast, slow = _fastest(access, (short, wrong_last))
    assert fast / slow > 0.2, (fast, slow)


def test_only_the_exact_secret_matches() -> None:
    access = AdminAccess()
    assert access.matches(access.secret)
    for wrong in ("", None, access.secret[:-1], access.secret + "x", access.secret.upper(), "é"):
        assert not access.matches(wrong)
