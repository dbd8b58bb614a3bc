"""The documents stay true: every WADDLE_* variable the code reads is in README's table, every
error code is in docs/api.md, and every test the docs cite exists."""

from __future__ import annotations

import re
from pathlib import Path

from waddle.server.errors import CODES

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


def test_every_test_the_docs_point_to_exists():
    cited = set()
    for doc in (ROOT / "docs").glob("*.md"):
        cited.update(re.findall(r"(tests/\w+\.py)::(\w+)", doc.read_text()))
    assert cited, "no test is cited"
    missing = [
        f"{path}::{name}"
        for path, name in sorted(cited)
        if not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M)
    ]
    assert not missing, f"docs cite tests that do not exist: {missing}"


def test_every_error_code_is_in_the_api_doc():
    api = (ROOT / "docs" / "api.md").read_text()
    assert [code for code in CODES if f"`{code}`" not in api] == []
