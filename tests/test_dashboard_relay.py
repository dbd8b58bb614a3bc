"""The dashboard of a relaying pair, in a real Chromium: a training machine's `waddle serve
--relay-to` shows in its header how far its relay is behind and why it is retrying, kept fresh
until it has caught up; the central server's runs table and run overview name the machine a
relayed run came from (issue 11)."""

from __future__ import annotations

from tests.browser import screenshot, wait_js
from tests.conftest import wait_until
from tests.relay_helpers import TOKEN, Central, finished_id, train
from tests.server_helpers import serving

VIEWER = "viewer-1"  # the central server's read-only token (relay_helpers.Central)


def _open(page, url: str, token: str) -> None:
    page.goto(url)
    page.wait_for_selector("#token")
    page.fill("#token", token)
    page.keyboard.press("Enter")
    page.wait_for_selector(".runs-rows .row[data-run]")


def test_the_relay_state_in_the_header_and_the_origin_of_relayed_runs(tmp_path, page):
    local = tmp_path / "local"
    local.mkdir()
    central = Central(tmp_path / "central", tmp_path / "central.log")  # down at first
    run_id = finished_id(train(local, steps=200))
    try:
        with serving(local, token=TOKEN, relay_to=central.url, origin="ws-1") as served:
            wait_until(lambda: served.caught_up() and served.json("/api/projects")["projects"])
            down = wait_until(
                lambda: (r := served.json("/api/health")["relay"])["state"] == "retrying" and r
            )
            _open(page, served.url + "/p/p", TOKEN)
            status = page.locator(".relay-status")
            page.wait_for_selector(".relay-status.retrying")

            def shown_as_in_health():
                behind = served.json("/api/health")["relay"]["behind_events"]
                label = status.locator(".relay-state").text_content()
                return label.startswith(f"relay: behind by {behind:,} events · ") and label

            assert down["behind_events"] > 0
            assert "retrying in" in wait_until(shown_as_in_health)
            assert "cannot reach" in status.locator(".relay-error").text_content()
            title = status.get_attribute("title")
            assert f"relaying to {central.url} as origin ws-1" in title
            assert "nothing acknowledged yet" in title
            assert page.locator(".runs-head .cell", has_text="origin").count() == 0  # all local
            screenshot(page, "relay-behind")

            central.start()
            # Without a reload: the header follows the relay until it has caught up.
            page.wait_for_selector(".relay-status.ok", timeout=60_000)
            assert status.locator(".relay-state").text_content() == "relay: caught up"
            assert status.locator(".relay-error").text_content() == ""
            assert "last acknowledged" in status.get_attribute("title")
            page.goto("about:blank")

        def runs() -> int | None:  # acknowledged is not yet indexed: no project 'p' at first
            return central.client.get("/api/projects/p/runs").json().get("total")

        wait_until(lambda: runs() == 1, timeout=60)
        here = finished_id(train(central.folder, steps=5))  # a run logged on the central machine
        wait_until(lambda: runs() == 2, timeout=60)
        _open(page, central.url + "/p/p", VIEWER)  # a viewer sees where runs came from
        head = page.locator(".runs-head .cell").all_text_contents()
        assert head.index("origin") == head.index("name") + 1
        rows = page.locator(".runs-rows .row[data-run]")
        wait_js(page, "document.querySelectorAll('.runs-rows .row[data-run]').length === 2")
        assert rows.first.get_attribute("data-run") == here  # newest first
        # Sorted by origin on the server: the relayed run first, the one logged here last.
        page.locator(".runs-head .cell", has_text="origin").click()
        wait_js(
            page,
            f"document.querySelector('.runs-rows .row[data-run]').dataset.run === 'ws-1.{run_id}'",
        )
        assert "sort=origin" in page.url
        assert page.locator(".runs-head .cell.active").text_content() == "origin ▲"
        row = rows.first
        origin_cell = row.locator(".cell").nth(head.index("origin"))
        assert origin_cell.text_content() == "ws-1"
        assert rows.nth(1).locator(".cell").nth(head.index("origin")).text_content() == ""
        # Filtered by origin, kept in the URL and after a reload.
        origins = page.locator("select.origin-filter option").all_text_contents()
        assert origins == ["any origin", "logged here", "from ws-1"]
        page.select_option("select.origin-filter", "-")
        wait_js(page, "document.querySelectorAll('.runs-rows .row[data-run]').length === 1")
        assert rows.first.get_attribute("data-run") == here
        assert "origin=-" in page.url
        page.reload()
        wait_js(
            page, f"document.querySelector('.runs-rows .row[data-run]')?.dataset.run === '{here}'"
        )
        assert page.locator(".toolbar .count").text_content() == "1 runs"
        assert page.locator("select.origin-filter").input_value() == "-"
        page.select_option("select.origin-filter", "ws-1")
        wait_js(
            page,
            f"document.querySelector('.runs-rows .row[data-run]')?.dataset.run === 'ws-1.{run_id}'",
        )
        assert page.locator(".runs-rows .row[data-run]").count() == 1
        assert page.locator(".relay-status").is_hidden()  # the central server relays nothing
        screenshot(page, "runs-origin")

        row.get_by_role("link").click()
        wait_js(page, f"location.pathname.endsWith('ws-1.{run_id}')")
        assert "relayed from ws-1" in page.locator(".run-head").text_content()
        page.get_by_role("tab", name="overview").click()
        context = page.locator(".context tr")
        context.first.wait_for()
        rows = {
            r.locator("th").text_content(): r.locator("td").text_content() for r in context.all()
        }
        assert rows["relayed from"] == "ws-1" and rows["run id there"] == run_id
        page.goto("about:blank")
    finally:
        central.kill()
