"""`make audit`: check the pinned runtime packages (requirements.txt) against known advisories.

pip-audit (pinned in requirements-audit.txt, in its own .venv-audit) asks the PyPI advisory
service about each pinned version. When that service cannot be reached (an offline machine or
CI), the audit is skipped with the reason and exits 0: being offline is not a vulnerability, and
AURORA_REQUIRE_SERVICES does not change that (it is about the services the tests run against).
A reachable service that reports a vulnerability exits 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-audit"
PROBE_URL = "https://pypi.org/pypi/pip/json"  # the advisory service pip-audit uses (vulnerabilities in the JSON API)


def advisory_service_reason() -> str | None:
    """None when the service answers, otherwise why not."""
    try:
        with urllib.request.urlopen(PROBE_URL, timeout=10) as response:
            response.read(1)
    except Exception as exc:  # DNS, refused, timeout, proxy, TLS
        return f"{exc.__class__.__name__}: {exc}"
    return None


def skip(reason: str) -> int:
    print(f"dependency audit SKIPPED: advisory service unreachable ({reason})")
    return 0


def ensure_venv() -> Path | None:
    pip_audit = VENV / "bin" / "pip-audit"
    stamp = VENV / ".installed-stamp"
    wanted = (ROOT / "requirements-audit.txt").read_text()
    if pip_audit.exists() and stamp.exists() and stamp.read_text() == wanted:
        return pip_audit
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    installed = subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
                                "--disable-pip-version-check", "-r", str(ROOT / "requirements-audit.txt")])
    if installed.returncode != 0:
        return None
    stamp.write_text(wanted)
    return pip_audit


def main() -> int:
    reason = advisory_service_reason()
    if reason is not None:
        return skip(reason)
    pip_audit = ensure_venv()
    if pip_audit is None:
        return skip("pip-audit could not be installed from the package index")
    command = [str(pip_audit), "-r", str(ROOT / "requirements.txt"), "--no-deps", "--disable-pip",
               "--progress-spinner", "off", "--desc", "on"]
    print("dependency audit:", " ".join(command[1:]), flush=True)
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
                            capture_output=True, text=True)
    output = result.stdout + result.stderr
    print(output, end="")
    if result.returncode != 0 and ("ConnectionError" in output or "Max retries exceeded" in output):
        return skip("pip-audit lost the connection")
    unaudited = output.count("could not be audited")
    pinned = sum(1 for line in (ROOT / "requirements.txt").read_text().splitlines()
                 if line.strip() and not line.lstrip().startswith("#"))
    if result.returncode == 0 and unaudited and unaudited >= pinned:
        # "No known vulnerabilities found" means nothing when no package could be looked up.
        return skip(f"the advisory service knew none of the {pinned} pinned packages")
    if unaudited:
        print(f"dependency audit: {unaudited} of {pinned} pinned packages could not be audited")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
