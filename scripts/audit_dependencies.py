"""Check the installed Python packages against PyPI's own advisory data, and say plainly
which ones could not be checked (never a clean result for packages that were skipped).

First pip-audit asks PyPI's per-release JSON API for each installed version. Where that answer
is missing (some registry mirrors serve only project pages), PyPI's project JSON is asked
instead: its `vulnerabilities` list covers the project's latest release, so it settles the
question exactly when the installed version is that release. Anything else is reported as
NOT CHECKED, with the reason.

Exit status: 1 when a known vulnerability affects an installed package, 2 when the audit
could not run at all, 0 otherwise (the summary line says how many packages were checked).

    python scripts/audit_dependencies.py            # the packages of this Python
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from importlib import metadata

PYPI = "https://pypi.org/pypi/{name}/json"
TIMEOUT = 15


def installed() -> dict[str, str]:
    """Normalised name -> version of every distribution of this Python."""
    out = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-").replace(".", "-")
        if name:
            out[name] = dist.version
    return out


def pip_audit() -> list[dict] | None:
    """pip-audit's answer per dependency, or None when pip-audit could not run."""
    try:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip_audit",
                "--local",
                "--format",
                "json",
                "--progress-spinner",
                "off",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        return json.loads(r.stdout)["dependencies"]
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None


def project_advisories(name: str, version: str) -> tuple[list[dict] | None, str]:
    """(advisories affecting `version`, "") when PyPI's project data settles it, else
    (None, why not)."""
    try:
        with urllib.request.urlopen(PYPI.format(name=name), timeout=TIMEOUT) as resp:  # nosec B310
            doc = json.load(resp)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, f"PyPI unreachable ({exc})"
    latest = doc.get("info", {}).get("version")
    if latest != version:
        return None, f"installed {version}; PyPI's project data covers only {latest}"
    return [v for v in doc.get("vulnerabilities") or [] if not v.get("withdrawn")], ""


def main() -> int:
    versions = installed()
    answers = pip_audit()
    if answers is None:
        print("dependency audit: pip-audit could not run; NOTHING WAS CHECKED")
        return 2
    found: list[str] = []
    checked: list[str] = []
    unchecked: list[str] = []
    for dep in answers:
        name = dep["name"].lower().replace("_", "-").replace(".", "-")
        version = dep.get("version") or versions.get(name, "?")
        if "skip_reason" not in dep:
            checked.append(name)
            found += [
                f"{name} {version}: {v['id']} (fixed in {', '.join(v.get('fix_versions') or ['?'])})"
                for v in dep.get("vulns", ())
            ]
            continue
        vulns, why = project_advisories(name, version)
        if vulns is None:
            unchecked.append(f"{name} {version}: {why}")
            continue
        checked.append(name)
        found += [
            f"{name} {version}: {v['id']} (fixed in {', '.join(v.get('fixed_in') or ['?'])})"
            for v in vulns
        ]
    for line in found:
        print(f"VULNERABLE {line}")
    for line in unchecked:
        print(f"NOT CHECKED {line}")
    print(
        f"dependency audit: {len(checked)} of {len(answers)} packages checked against "
        f"PyPI's advisories, {len(found)} known vulnerabilities, {len(unchecked)} NOT "
        "checked" + (" (see above)" if unchecked else "")
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
