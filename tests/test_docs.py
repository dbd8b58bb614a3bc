"""The documents stay true: every WADDLE_* variable the code reads is in README's table."""

from __future__ import annotations

import re
from pathlib import Path

from waddle.settings import RUN_VARIABLES, SETTINGS

ROOT = Path(__file__).resolve().parent.parent


def test_every_environment_variable_is_listed_in_readme():
    readme = (ROOT / "README.md").read_text()
    used = set()
    for folder in ("waddle", "server"):
        for path in (ROOT / folder).rglob("*.py"):
            used.update(re.findall(r"WADDLE_[A-Z_]+[A-Z]", path.read_text()))
    for setting in (*SETTINGS.values(), *RUN_VARIABLES.values()):
        used.update(variable for variable in (setting.variable, setting.wandb) if variable)
    missing = sorted(variable for variable in used if f"`{variable}`" not in readme)
    assert not missing, f"README's settings table lacks {missing}"


def test_readme_starts_with_the_install_and_test_commands_that_ci_runs():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.+?)\n```", readme)
    assert commands[0].startswith("pip install") and "waddle demo" in commands[0]
    assert "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
