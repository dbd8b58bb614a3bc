"""``/files``: a file is served only when the run recorded it and it still holds what was
recorded; saved files come with a sensible type and their original name."""

from __future__ import annotations

import os

import httpx
import numpy as np
import pytest
from waddle.server.routes.files import byte_range, content_disposition

import waddle
from tests.conftest import wait_until
from tests.server_helpers import serving


def _recorded(s, run, kind: str = "media") -> list[dict]:
    wait_until(s.caught_up)
    return s.json(f"/api/projects/p/runs/{run.id}/{kind}")["items"]


def test_a_hard_link_to_a_file_elsewhere_is_not_served(tmp_path, new_run):
    """A link inside the run folder passes any path check; its content is not what was logged."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    run = new_run()
    run.log({"pic": waddle.Image(np.zeros((4, 4), dtype=np.uint8))})
    run.finish()
    recorded = run.dir / next(iter((run.dir / "media").iterdir())).relative_to(run.dir)
    os.link(secret, run.dir / "media" / "x.png")  # not recorded at all
    with serving(tmp_path) as s:
        (item,) = _recorded(s, run)
        path = item["value"]["path"]
        assert s.get(f"/files/p/{run.id}/{path}").status_code == 200
        linked = s.get(f"/files/p/{run.id}/media/x.png")
        # The recorded file itself replaced by a hard link to the secret.
        os.unlink(recorded)
        os.link(secret, recorded)
        replaced = s.get(f"/files/p/{run.id}/{path}")
    for response in (linked, replaced):
        assert response.status_code == 404 and b"TOPSECRET" not in response.content
        assert response.json()["error"]["code"] == "not_found"
    assert "not what the run recorded" in replaced.json()["error"]["message"]


def test_a_file_changed_after_it_was_logged_or_never_logged_is_not_served(tmp_path, new_run):
    run = new_run()
    run.log({"pic": waddle.Image(np.zeros((4, 4), dtype=np.uint8))})
    run.finish()
    (run.dir / "media" / "stray.png").write_bytes(b"\x89PNG not logged")
    with serving(tmp_path) as s:
        (item,) = _recorded(s, run)
        url = f"/files/p/{run.id}/{item['value']['path']}"
        assert s.get(url).status_code == 200
        (run.dir / item["value"]["path"]).write_bytes(b"\x89PNG rewritten in place")
        assert s.get(url).status_code == 404
        assert s.get(f"/files/p/{run.id}/media/stray.png").status_code == 404


def test_nul_and_other_impossible_paths_are_404(tmp_path, new_run):
    run = new_run()
    run.finish()
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        for path in ("media/a%00b", "%00", "media/%00.png", "media/.hidden", "media"):
            response = httpx.get(f"{s.url}/files/p/{run.id}/{path}")
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"


def test_a_saved_file_has_a_sensible_type_and_its_original_name(tmp_path, new_run):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"\x00weights" * 100)
    config = tmp_path / "config.json"
    config.write_text("{}")
    run = new_run()
    run.save(checkpoint)
    run.save(checkpoint, name='ré"sumé\r\n.pt')
    run.save(config)
    run.finish()
    with serving(tmp_path) as s:
        by_name = {item["value"]["name"]: item["value"] for item in _recorded(s, run)}
        answers = {
            name: s.get(f"/files/p/{run.id}/{value['path']}") for name, value in by_name.items()
        }
    model = answers["model.pt"]
    assert model.status_code == 200 and model.content == checkpoint.read_bytes()
    assert model.headers["content-type"] == "application/octet-stream"
    assert answers["config.json"].headers["content-type"] == "application/json"
    assert answers["config.json"].headers["content-disposition"] == (
        "inline; filename=\"config.json\"; filename*=UTF-8''config.json"
    )
    # Saved twice under two names: one stored file, which carries the newest name.
    assert by_name["model.pt"]["path"] == by_name['ré"sumé\r\n.pt']["path"]
    assert model.headers["content-disposition"] == content_disposition('ré"sumé\r\n.pt')


def test_content_disposition_quotes_any_name_safely():
    assert content_disposition("model.pt") == (
        "inline; filename=\"model.pt\"; filename*=UTF-8''model.pt"
    )
    assert content_disposition('../ré"s\\um%é\r\n.pt') == (
        "inline; filename=\"um____.pt\"; filename*=UTF-8''um%25%C3%A9%0D%0A.pt"
    )
    for name in ("a;b=c.txt", "x\x00y", "日本.bin", "  spaced  "):
        header = content_disposition(name)
        assert header.isascii() and "\r" not in header and "\n" not in header
        assert header.count('"') == 2


def test_a_file_saved_as_a_hard_link_is_served(tmp_path, new_run):
    original = tmp_path / "big.bin"
    original.write_bytes(os.urandom(1000))
    run = new_run()
    run.save(original, link=True)
    run.finish()
    with serving(tmp_path) as s:
        (item,) = _recorded(s, run)
        stored = run.dir / item["value"]["path"]
        assert os.stat(stored).st_nlink == 2  # shares the original's inode
        response = s.get(f"/files/p/{run.id}/{item['value']['path']}")
    assert response.status_code == 200 and response.content == original.read_bytes()


def test_a_table_and_the_media_in_its_cells_are_served(tmp_path, new_run):
    run = new_run()
    image = np.full((3, 3), 200, dtype=np.uint8)
    run.log({"rows": waddle.Table(columns=["i", "pic"], data=[[1, waddle.Image(image)]])})
    run.finish()
    with serving(tmp_path) as s:
        (table,) = _recorded(s, run, "tables")
        side = s.get(f"/files/p/{run.id}/{table['value']['path']}")
        assert side.status_code == 200 and side.headers["content-type"] == "application/json"
        cell = side.json()["data"][0][1]
        picture = s.get(f"/files/p/{run.id}/{cell['path']}")
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        assert picture.headers["content-security-policy"].startswith("sandbox")


def test_one_byte_range_is_served_for_seeking(tmp_path, new_run):
    data = os.urandom(5000)
    source = tmp_path / "clip.bin"
    source.write_bytes(data)
    run = new_run()
    run.save(source)
    run.finish()
    with serving(tmp_path) as s:
        (item,) = _recorded(s, run)
        url = f"/files/p/{run.id}/{item['value']['path']}"
        part = s.get(url, headers={"Range": "bytes=100-199"})
        tail = s.get(url, headers={"Range": "bytes=-10"})
        past = s.get(url, headers={"Range": "bytes=9000-"})
        whole = s.get(url, headers={"Range": "bytes=0-1,5-9"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == "bytes 100-199/5000"
    assert tail.status_code == 206 and tail.content == data[-10:]
    assert past.status_code == 416 and past.headers["content-range"] == "bytes */5000"
    assert whole.status_code == 200 and whole.content == data


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", (0, 0)),
        ("bytes=10-", (10, 99)),
        ("bytes=90-500", (90, 99)),
        ("bytes=-5", (95, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=5-1", None),
        ("bytes=-", None),
        ("items=0-5", None),
        ("bytes=0-1,3-4", None),
    ],
)
def test_byte_range(header, expected):
    assert byte_range(header, 100) == expected
