"""CI: install waddle the way a user of a wheel would, and check that it serves.

Builds a wheel of this checkout, installs it with the server extra into a fresh virtualenv,
starts `waddle serve` from a folder outside the checkout (so nothing is imported from the
source tree), and checks GET /api/health, GET / (the built dashboard) and its script.
Standard library only; exits non-zero with one line on any failure.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import venv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(message: str) -> None:
    print(f"wheel check: {message}", file=sys.stderr)
    sys.exit(1)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.read().decode()


def main() -> None:
    work = tempfile.mkdtemp(prefix="waddle-wheel-")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "-q", "-w", work], check=True
    )
    (wheel,) = glob.glob(os.path.join(work, "waddle-*.whl"))
    env_dir = os.path.join(work, "venv")
    venv.create(env_dir, with_pip=True)
    bin_dir = os.path.join(env_dir, "bin")
    subprocess.run([os.path.join(bin_dir, "pip"), "install", "-q", f"{wheel}[server]"], check=True)
    logs = os.path.join(work, "logs")
    os.mkdir(logs)
    server = subprocess.Popen(
        [os.path.join(bin_dir, "waddle"), "serve", logs, "--port", "0"],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first = server.stdout.readline()
        if "serving" not in first:
            fail(f"waddle serve did not start: {first.strip()} {server.stdout.read()[-2000:]}")
        url = first.split(" at ")[-1].strip()
        deadline = time.monotonic() + 30
        while '"status":"ok"' not in get(f"{url}/api/health"):
            if time.monotonic() > deadline:
                fail("/api/health never said ok")
            time.sleep(0.2)
        page = get(f"{url}/")
        if 'src="/assets/app.js"' not in page:
            fail(f"GET / is not the built dashboard: {page[:200]!r}")
        if len(get(f"{url}/assets/app.js")) < 10_000:
            fail("/assets/app.js is not the bundle")
        print(
            f"wheel check: {os.path.basename(wheel)} installed in a fresh venv serves the API and the dashboard"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
