"""Packaging rules that pyproject.toml cannot state: which folders hold which packages, and the
dashboard build that runs with every install.

- Packages are found under each mapped folder (``waddle/`` is ``waddle``, ``server/`` is
  ``waddle.server``, ``static/`` is ``waddle.dashboard``), so a new subpackage such as
  ``waddle.server.routes`` is installed without being listed by hand.
- ``build_py`` (run by ``pip install .`` and ``pip install -e .``) builds the dashboard with npm
  when npm is on PATH; without npm, or when the build fails, the install still succeeds and
  ``waddle serve`` says the dashboard is not built and how to build it. The built ``static/dist/``
  is package data of ``waddle.dashboard``, so a wheel carries it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PACKAGE_DIRS = {"waddle": "waddle", "waddle.server": "server", "waddle.dashboard": "static"}
DASHBOARD = ROOT / "static"


def packages() -> list[str]:
    found = []
    for name, folder in PACKAGE_DIRS.items():
        found.append(name)
        found += [f"{name}.{sub}" for sub in find_packages(folder, exclude=["node_modules*"])]
    return found


def build_dashboard() -> None:
    npm = shutil.which("npm")
    if npm is None or not (DASHBOARD / "package.json").is_file():
        print("waddle: npm not found, the dashboard is not built", file=sys.stderr)
        return
    steps = [[npm, "ci", "--no-audit", "--no-fund"], [npm, "run", "build"]]
    installed = DASHBOARD / "node_modules" / ".package-lock.json"
    if (
        installed.is_file()
        and installed.stat().st_mtime >= (DASHBOARD / "package-lock.json").stat().st_mtime
    ):
        steps = steps[1:]  # up to date: `npm ci` would delete and fetch it all again
    for step in steps:
        done = subprocess.run(step, cwd=DASHBOARD, check=False)
        if done.returncode != 0:
            print(
                f"waddle: `{' '.join(step[1:])}` failed: the dashboard is not built",
                file=sys.stderr,
            )
            return


class BuildWithDashboard(build_py):
    def run(self) -> None:
        build_dashboard()
        super().run()


setup(
    packages=packages(),
    package_dir=PACKAGE_DIRS,
    package_data={"waddle.dashboard": ["dist/*", "dist/**/*"]},
    include_package_data=False,
    cmdclass={"build_py": BuildWithDashboard},
)
