"""One rule for every real part a test needs (a server binary, Chromium).

Where the part is not installed the test skips with one line, except when the matching variable
says it is required: `REQUIRE_SERVERS=1` (nginx, openssl, PostgreSQL, Redis, the S3 server) or
`REQUIRE_BROWSER=1` (Chromium). `.ci/run` sets both, so CI never skips a real part.
"""

from __future__ import annotations

import os
import shutil

import pytest

SBIN = "/usr/sbin:/usr/local/sbin"


def require(available: bool, reason: str, variable: str = "REQUIRE_SERVERS") -> None:
    """Skip (or fail, when `variable` is 1) unless the part is available."""
    if available:
        return
    if os.environ.get(variable) == "1":
        pytest.fail(f"{variable}=1 but {reason}")
    pytest.skip(reason)


def required_binary(name: str, package: str, path: str | None = None) -> str:
    """The path of a system command, or a skip (a failure under REQUIRE_SERVERS=1)."""
    found = shutil.which(name) or (path and shutil.which(name, path=path))
    require(bool(found), f"{name} is not installed (apt-get install {package})")
    return found
