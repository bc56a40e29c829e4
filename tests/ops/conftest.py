"""The browser and Prometheus tests (`make test-ops`): real Chromium, real Prometheus.

They need programs from Debian's packages (README, "Tests"); a missing one fails the run
with the package to install, never skips. `make test` does not collect this folder.
"""

from __future__ import annotations

import shutil

import pytest

# Program -> the Debian package that brings it.
PACKAGES = {"chromium": "chromium", "prometheus": "prometheus", "promtool": "prometheus"}


def require(program: str) -> str:
    """The path of `program`, or a failed test naming the Debian package to install."""
    path = shutil.which(program)
    if path is None:
        package = PACKAGES[program]
        pytest.fail(
            f"{program} not found: install Debian's package with `apt-get install {package}` "
            "(see README, \"Monitoring\")", pytrace=False,
        )
    return path
