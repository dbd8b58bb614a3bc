"""The `waddle` command as a user runs it: real subprocesses, one-line errors."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import PYTHON, child_env


def waddle(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "waddle.cli", *args],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_then_ls_lists_the_finished_run_with_its_last_values(tmp_path):
    demo = waddle("demo", str(tmp_path), "--steps", "50", WADDLE_SYSTEM_METRICS_INTERVAL="0")
    assert demo.returncode == 0, demo.stderr
    assert "logged 50 steps" in demo.stdout
    listing = waddle("ls", str(tmp_path))
    assert listing.returncode == 0
    header, row = listing.stdout.strip().splitlines()
    assert header.split()[:5] == ["PROJECT", "RUN", "NAME", "STATUS", "STEPS"]
    cells = row.split()
    assert cells[0] == "demo" and cells[3] == "finished" and cells[4] == "50"
    assert "epoch=1" in row and "train/grad_norm=" in row  # the last step's values, by key


def test_ls_filters_by_project_and_reads_waddle_dir(tmp_path):
    assert waddle("demo", str(tmp_path), "--steps", "5", "--project", "alpha").returncode == 0
    assert waddle("demo", str(tmp_path), "--steps", "5", "--project", "beta").returncode == 0
    both = waddle("ls", WADDLE_DIR=str(tmp_path)).stdout
    assert "alpha" in both and "beta" in both
    only = waddle("ls", str(tmp_path), "--project", "beta").stdout
    assert "beta" in only and "alpha" not in only


def test_errors_are_one_line_without_a_traceback(tmp_path):
    missing = waddle("ls", str(tmp_path / "nothing"))
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"waddle ls: no log folder at {tmp_path / 'nothing'}"
    empty = waddle("ls", str(tmp_path))
    assert empty.returncode == 0 and "no runs" in empty.stdout


def test_ls_of_a_missing_project_names_it_and_the_projects_there(tmp_path):
    assert waddle("demo", str(tmp_path), "--steps", "2", "--project", "alpha").returncode == 0
    missing = waddle("ls", str(tmp_path), "--project", "nope")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"waddle ls: no project 'nope' in {tmp_path}; its projects: alpha"
    )


def test_serve_refuses_a_missing_folder_and_a_bad_port_in_one_line(tmp_path):
    missing = waddle("serve", str(tmp_path / "nothing"), "--port", "0")
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"waddle serve: no log folder at {tmp_path / 'nothing'}")
    assert len(missing.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "nothing").exists()
    port = waddle("serve", str(tmp_path), "--port", "99999")
    assert port.returncode == 1
    assert (
        port.stderr.strip()
        == "waddle serve: setting port='99999' is not valid: must be at most 65535"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop the permission override")
def test_demo_that_could_not_write_exits_non_zero(tmp_path):
    log_dir = tmp_path / "readonly"
    log_dir.mkdir()
    log_dir.chmod(0o555)
    demo = subprocess.run(
        [
            "setpriv",  # root without the capability to override file permissions
            "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search",
            PYTHON,
            "-m",
            "waddle.cli",
            "demo",
            str(log_dir),
            "--steps",
            "5",
        ],
        env=child_env(HOME="/tmp", WADDLE_SYSTEM_METRICS_INTERVAL="0"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 1
    assert "logged 5 steps" not in demo.stdout
    assert "could not be written" in demo.stderr.splitlines()[-1]


def test_version():
    from waddle import __version__

    shown = waddle("--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"waddle {__version__}"
