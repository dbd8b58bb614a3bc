"""What an install gives a user: a wheel with every subpackage and the built dashboard, and a
server that says so in one line when the dashboard was not built."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PYTHON, child_env, wait_until
from tests.server_helpers import serving

ROOT = Path(__file__).resolve().parent.parent


def test_a_wheel_holds_every_server_subpackage_and_the_built_dashboard(tmp_path):
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("waddle-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for python_file in (
        *ROOT.joinpath("server").rglob("*.py"),
        *ROOT.joinpath("waddle").rglob("*.py"),
    ):
        top = "waddle/server" if python_file.is_relative_to(ROOT / "server") else "waddle"
        base = ROOT / ("server" if top == "waddle/server" else "waddle")
        assert f"{top}/{python_file.relative_to(base).as_posix()}" in names
    for built_file in ("index.html", "app.js", "style.css", "favicon.svg"):
        assert f"waddle/dashboard/dist/{built_file}" in names
    assert not any("node_modules" in name or "/src/" in name for name in names)


def test_without_a_built_dashboard_the_page_and_the_command_say_how_to_build_it(
    tmp_path, monkeypatch
):
    from waddle.server.routes import dashboard

    monkeypatch.setattr(dashboard, "DIST", tmp_path / "nothing")
    with serving(tmp_path) as served:
        page = served.get("/")
        assert page.status_code == 503
        assert dashboard.BUILD_COMMAND in page.text and "not built" in page.text
        assert served.get("/api/health").status_code == 200  # the API works without it

    script = (
        "import sys; from pathlib import Path; from waddle.server.routes import dashboard;"
        f"dashboard.DIST = Path({str(tmp_path / 'nothing')!r});"
        "from waddle.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    server = subprocess.Popen(
        [PYTHON, "-c", script, "serve", str(tmp_path), "--port", "0"],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        wait_until(lambda: lines.append(server.stdout.readline()) or len(lines) >= 2, timeout=30)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert lines[0].startswith("waddle: serving")
    assert lines[1].startswith("waddle: the dashboard is not built")
    assert dashboard.BUILD_COMMAND in lines[1]


@pytest.mark.parametrize("path", ["/p/demo", "/p/demo/r/some-run?tab=media", "/p/x/compare"])
def test_deep_links_answer_the_page(tmp_path, path):
    with serving(tmp_path) as served:
        answer = served.get(path)
        assert answer.status_code == 200
        assert '<script type="module" src="/assets/app.js">' in answer.text
