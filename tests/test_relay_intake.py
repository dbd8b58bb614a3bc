"""The central side of relaying (POST /api/ingest and the stored files): who may send, what is
refused, and that a refused request writes nothing; each event is appended once, in order."""

from __future__ import annotations

import gzip
import hashlib
import os

import httpx
import orjson
import pytest
from waddle.server import ingest_body
from waddle.server.ingest_body import Chunk
from waddle.server.intake import Intake
from waddle.server.notices import Notices
from waddle.server.tokens import Tokens, read_file

from tests.conftest import wait_until
from tests.server_helpers import serving
from waddle import event as event_format
from waddle import segment

TOKEN = "central-token-1"
VIEWER = "viewer-token-1"


def lines(first: int, last: int, run: str = "r1", project: str = "p") -> bytes:
    """Event lines of seqs first..last: a run_start at 0, then log events."""
    out = []
    for seq in range(first, last + 1):
        if seq == 0:
            event = {"project": project, "run_id": run, "name": "n", "config": {}, "tags": []}
            out.append(
                event_format.encode({"v": 1, "seq": 0, "t": 1.8e9, "type": "run_start", **event})
            )
        else:
            data = {"x": float(seq), "y": float("nan")}
            out.append(
                event_format.encode(
                    {"v": 1, "seq": seq, "t": 1.8e9 + seq, "type": "log", "step": seq, "data": data}
                )
            )
    return b"".join(out)


def body(*chunks: tuple, origin: str = "box") -> bytes:
    return ingest_body.encode(origin, [Chunk(p, r, after, data) for p, r, after, data in chunks])


@pytest.fixture
def central(tmp_path):
    folder = tmp_path / "central"
    folder.mkdir()
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\nread {VIEWER}  # for the dashboard\n")
    with serving(folder, token_file=str(tokens)) as served:
        served.folder = folder
        yield served


def post(central, data: bytes, token: str | None = TOKEN, **headers) -> httpx.Response:
    headers = {"Content-Encoding": "gzip", **headers}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(central.url + "/api/ingest", content=data, headers=headers, timeout=30)


def written(central) -> list[str]:
    return sorted(
        str(path.relative_to(central.folder))
        for path in central.folder.rglob("*")
        if ".waddle" not in path.parts
    )


def run_bytes(central, run: str = "box.r1") -> bytes:
    return b"".join(path.read_bytes() for path in segment.list_segments(central.folder / "p" / run))


def test_each_event_is_appended_once_replays_are_ignored_and_a_gap_is_never_filled(central):
    answer = post(central, body(("p", "r1", -1, lines(0, 9))))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"runs": [{"project": "p", "run": "r1", "id": "box.r1", "acked": 9}]}
    assert post(central, body(("p", "r1", -1, lines(0, 9)))).json()["runs"][0]["acked"] == 9
    assert run_bytes(central) == lines(0, 9)  # the replay changed nothing
    # Events after seq 20 while the server holds up to 9: a gap; nothing of it is written.
    assert post(central, body(("p", "r1", 20, lines(21, 25)))).json()["runs"][0]["acked"] == 9
    assert run_bytes(central) == lines(0, 9)
    # A batch overlapping what is held: only what is new is appended.
    assert post(central, body(("p", "r1", 5, lines(6, 14)))).json()["runs"][0]["acked"] == 14
    assert run_bytes(central) == lines(0, 14)
    # A 0-byte chunk asks where the server stands; an unknown run stands at -1.
    asked = post(central, body(("p", "r1", -1, b""), ("p", "new", -1, b""))).json()["runs"]
    assert [run["acked"] for run in asked] == [14, -1]
    assert not (central.folder / "p" / "box.new").exists()


def test_each_rank_of_a_run_is_its_own_stream_appended_once_into_the_runs_ranks_folder(central):
    # Rank 1 and rank 0 of one run, each from seq 0; rank 1 starts before rank 0 is there.
    ranked = ingest_body.encode("box", [Chunk("p", "r1", -1, lines(0, 4), rank=1)])
    answer = post(central, ranked).json()["runs"]
    assert answer == [{"project": "p", "run": "r1", "id": "box.r1", "acked": 4, "rank": 1}]
    both = ingest_body.encode(
        "box",
        [Chunk("p", "r1", -1, lines(0, 2)), Chunk("p", "r1", 2, lines(3, 7), rank=1)],
    )
    assert [run["acked"] for run in post(central, both).json()["runs"]] == [2, 7]
    assert post(central, both).json()["runs"][1]["acked"] == 7  # a replay: nothing written
    # A gap in rank 1 is not filled, and rank 2 cannot start after seq 0.
    gap = ingest_body.encode(
        "box",
        [Chunk("p", "r1", 9, lines(10, 11), rank=1), Chunk("p", "r1", 0, lines(1, 2), rank=2)],
    )
    assert [run["acked"] for run in post(central, gap).json()["runs"]] == [7, -1]
    assert run_bytes(central) == lines(0, 2)
    rank_dir = central.folder / "p" / "box.r1" / "ranks"
    assert b"".join(p.read_bytes() for p in segment.list_segments(rank_dir / "1")) == lines(0, 7)
    assert sorted(path.name for path in rank_dir.iterdir()) == ["1"]
    assert (central.folder / "p" / "box.r1" / "origin.json").is_file()
    assert not (rank_dir / "1" / "origin.json").exists()
    # A rank's stored files go by their path in the run folder.
    content = b"rank one's image"
    path = f"ranks/1/media/{hashlib.sha256(content).hexdigest()}.png"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    lacking = central.url + "/api/ingest/lacking"
    asked = {"origin": "box", "project": "p", "run": "r1", "paths": [path]}
    assert httpx.post(lacking, json=asked, headers=auth).json() == {"lacking": [path]}
    put = httpx.put(
        f"{central.url}/api/ingest/files/box/p/r1/{path}", content=content, headers=auth
    )
    assert put.status_code == 201
    assert (central.folder / "p" / "box.r1" / path).read_bytes() == content
    assert httpx.post(lacking, json=asked, headers=auth).json() == {"lacking": []}
    asked["paths"] = [path.replace("ranks/1/", "ranks/01/")]
    assert httpx.post(lacking, json=asked, headers=auth).status_code == 422


@pytest.mark.parametrize("rank", [-1, "1", True, 2**31, 1.0])
def test_a_chunk_whose_rank_is_not_a_rank_is_refused_whole(central, rank):
    good = ingest_body.decompress(body(("p", "ok", -1, lines(0, 3, run="ok"))))
    header = orjson.dumps({"project": "p", "run": "r1", "rank": rank, "after": -1, "bytes": 0})
    _refused(central, gzip.compress(good + header + b"\n"), 422, f"rank {rank!r} is not a rank")


def test_a_gap_in_the_origin_log_is_carried_over_as_the_same_gap(central):
    # The origin's log lost seqs 3 and 4: the relay says the batch continues from seq 2.
    source = lines(0, 2) + lines(5, 7)
    assert post(central, body(("p", "r1", -1, source))).json()["runs"][0]["acked"] == 7
    assert run_bytes(central) == source


def test_two_origins_with_the_same_project_and_run_id_are_two_runs(central):
    for origin in ("node-a", "node-b"):
        assert post(central, body(("p", "r1", -1, lines(0, 3)), origin=origin)).status_code == 200
    assert sorted(path.name for path in (central.folder / "p").iterdir()) == [
        "node-a.r1",
        "node-b.r1",
    ]
    origin = orjson.loads((central.folder / "p" / "node-b.r1" / "origin.json").read_bytes())
    assert origin == {"origin": "node-b", "project": "p", "run_id": "r1"}
    # The project's keys name both machines (a runs table's origin column).
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    runs = central.url + "/api/projects/p/runs"
    wait_until(lambda: httpx.get(runs, headers=viewer).json().get("total") == 2)
    keys = httpx.get(central.url + "/api/projects/p/keys", headers=viewer).json()
    assert keys["origins"] == ["node-a", "node-b"]


def test_the_runs_list_sorts_and_filters_by_origin(central, new_run):
    # Two machines' runs and one logged on the central machine itself (no origin).
    for origin, run in (("node-b", "r1"), ("node-a", "r2")):
        assert post(central, body(("p", run, -1, lines(0, 3, run=run)), origin=origin)).is_success
    new_run(dir=central.folder, name="here").finish()
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    runs = central.url + "/api/projects/p/runs"

    def listed(**params) -> list:
        answer = httpx.get(runs, params=params, headers=viewer)
        assert answer.status_code == 200, answer.text
        return [(r["origin"], r["id"]) for r in answer.json()["runs"]]

    wait_until(lambda: httpx.get(runs, headers=viewer).json().get("total") == 3)
    here = listed(origin="-")
    assert len(here) == 1 and here[0][0] is None
    # By origin, the runs logged here last either way (as every missing value sorts).
    assert listed(sort="origin") == [("node-a", "node-a.r2"), ("node-b", "node-b.r1"), here[0]]
    assert listed(sort="-origin") == [("node-b", "node-b.r1"), ("node-a", "node-a.r2"), here[0]]
    assert listed(origin="node-b") == [("node-b", "node-b.r1")]
    assert listed(origin="node-c") == []
    assert httpx.get(runs, params={"origin": "node-a"}, headers=viewer).json()["total"] == 1


@pytest.mark.parametrize(
    "token, status, code",
    [(None, 401, "unauthorized"), ("wrong-token", 401, "unauthorized"), (VIEWER, 403, "forbidden")],
)
def test_without_a_full_token_nothing_is_written_and_no_token_is_echoed(
    central, capfd, token, status, code
):
    answer = post(central, body(("p", "r1", -1, lines(0, 3))), token=token)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
    digest = hashlib.sha256(b"x").hexdigest()
    upload = httpx.put(
        f"{central.url}/api/ingest/files/box/p/r1/media/{digest}.bin",
        content=b"x",
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    assert upload.status_code == status
    assert written(central) == []
    out, err = capfd.readouterr()
    for text in (answer.text, upload.text, out, err):
        assert TOKEN not in text and VIEWER not in text and "wrong-token" not in text


def test_a_read_only_token_reads_but_does_not_ingest(central):
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    assert httpx.get(central.url + "/api/projects", headers=viewer).status_code == 200
    asked = httpx.post(
        central.url + "/api/ingest/lacking",
        json={"origin": "box", "project": "p", "run": "r1", "paths": []},
        headers=viewer,
    )
    assert asked.status_code == 403


def test_a_server_without_tokens_takes_no_relayed_runs(tmp_path):
    with serving(tmp_path) as served:
        answer = post(served, body(("p", "r1", -1, lines(0, 3))), token=None)
        assert answer.status_code == 401
        assert "--token" in answer.json()["error"]["message"]
        assert served.json("/api/projects") == {"projects": []}  # the rest answers as before
    assert not (tmp_path / "p").exists()


def _refused(central, data: bytes, status: int, fragment: str, **headers) -> None:
    answer = post(central, data, **headers)
    assert answer.status_code == status, answer.text
    assert fragment in answer.json()["error"]["message"]
    assert written(central) == []


def test_a_body_over_the_limit_is_refused(central, monkeypatch):
    monkeypatch.setattr(ingest_body, "MAX_BODY_BYTES", 1000)
    _refused(central, os.urandom(2000), 413, "1000 bytes")
    monkeypatch.setattr(ingest_body, "MAX_RAW_BYTES", 1000)  # small when sent, huge unpacked
    _refused(central, body(("p", "r1", -1, lines(0, 50))), 422, "more than 1000 bytes")


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: b"not gzip at all", "not gzip"),
        (lambda: gzip.compress(b'{"v":2,"origin":"box"}\n'), "version"),
        (lambda: gzip.compress(b'{"v":1,"origin":"../etc"}\n'), "origin '../etc' is not allowed"),
        (lambda: body(("..", "r1", -1, lines(0, 1))), "not a valid name"),
        (
            lambda: gzip.compress(
                b'{"v":1,"origin":"box"}\n{"project":"p","run":"r1","after":-1,"bytes":99}\nxx'
            ),
            "not the length",
        ),
        (lambda: body(("p", "r1", -1, lines(0, 2) + b"{oops}\n")), "line 4: not valid JSON"),
        (lambda: body(("p", "r1", -1, lines(0, 2)[:-1])), "no newline"),
        (lambda: body(("p", "r1", -1, lines(3, 4) + lines(2, 2))), "does not come after"),
        (lambda: body(("p", "r1", 3, lines(2, 4))), "does not come after seq 3"),
        (lambda: body(("p", "r1", -1, lines(0, 2, run="other"))), "another run"),
        (lambda: body(("p", "r1", -1, lines(0, 2, project="q"))), "another run"),
    ],
)
def test_a_malformed_batch_is_refused_whole_with_a_reason(central, make, fragment):
    # A valid chunk before the bad one: it is not written either.
    data = make()
    if fragment in ("line 4: not valid JSON", "another run"):
        good = ingest_body.decompress(body(("p", "ok", -1, lines(0, 3, run="ok"))))
        data = gzip.compress(good + ingest_body.decompress(data).split(b"\n", 1)[1])
    _refused(central, data, 422, fragment)


def test_a_body_that_is_not_declared_gzip_is_refused(central):
    _refused(
        central, body(("p", "r1", -1, lines(0, 3))), 415, "gzip", **{"Content-Encoding": "identity"}
    )


def test_a_stored_file_is_kept_only_if_its_content_has_the_hash_its_name_says(central):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    content = b"\x89PNG fake image"
    digest = hashlib.sha256(content).hexdigest()
    base = f"{central.url}/api/ingest/files/box/p/r1"
    wrong = httpx.put(
        f"{base}/media/{hashlib.sha256(b'else').hexdigest()}.png", content=content, headers=auth
    )
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "hash_mismatch"
    for bad in (
        "media/../../../evil.png",
        f"../{digest}.png",
        f"media/{digest[:10]}.png",
        f"media/.{digest}",
    ):
        refused = httpx.put(f"{base}/{bad}", content=content, headers=auth)
        # 307: a path that is not canonical; 404: httpx removed the dot segments, and the
        # path left the ingest route (an unknown API path is 404 whatever the method).
        assert refused.status_code in (307, 404, 422), bad
    assert written(central) in ([], ["p", "p/box.r1", "p/box.r1/media", "p/box.r1/origin.json"])
    assert not list(central.folder.rglob(f"{digest}*")) and not list(
        central.folder.rglob(".incoming*")
    )
    asked = httpx.post(
        central.url + "/api/ingest/lacking",
        json={"origin": "box", "project": "p", "run": "r1", "paths": [f"media/{digest}.png"]},
        headers=auth,
    )
    assert asked.json() == {"lacking": [f"media/{digest}.png"]}
    right = httpx.put(f"{base}/media/{digest}.png", content=content, headers=auth)
    assert right.status_code == 201
    assert (central.folder / "p" / "box.r1" / "media" / f"{digest}.png").read_bytes() == content
    assert httpx.put(f"{base}/media/{digest}.png", content=content, headers=auth).status_code == 200
    asked = httpx.post(
        central.url + "/api/ingest/lacking",
        json={"origin": "box", "project": "p", "run": "r1", "paths": [f"media/{digest}.png"]},
        headers=auth,
    )
    assert asked.json() == {"lacking": []}


def test_a_torn_line_a_kill_left_is_cut_off_before_more_is_appended(tmp_path):
    run_dir = tmp_path / "p" / "box.r1"
    run_dir.mkdir(parents=True)
    torn = lines(5, 5)[:20]
    (run_dir / segment.segment_name(0)).write_bytes(lines(0, 4) + torn)
    intake = Intake(tmp_path, Notices("test"))
    try:
        answer = intake.ingest(
            "box",
            [ingest_body.decode(ingest_body.decompress(body(("p", "r1", 4, lines(5, 6)))))[1][0]],
        )
        assert answer[0]["acked"] == 6
    finally:
        intake.close()
    assert (run_dir / segment.segment_name(0)).read_bytes() == lines(0, 6)


def test_a_token_file_holds_full_and_read_only_tokens_and_no_token_is_ever_shown(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# team\nalpha-1\n\nread beta-2 # viewers\n")
    tokens = read_file(path)
    assert (tokens.full, tokens.read) == (("alpha-1",), ("beta-2",))
    assert (tokens.kind("alpha-1"), tokens.kind(b"beta-2"), tokens.kind("gamma")) == (
        "full",
        "read",
        None,
    )
    assert "alpha" not in repr(tokens) and "beta" not in repr(tokens)
    path.write_text("read\n")
    with pytest.raises(ValueError, match=r"line 1") as error:
        read_file(path)
    path.write_text("one two three\n")
    with pytest.raises(ValueError, match=r"line 1") as error:
        read_file(path)
    assert "two" not in str(error.value)
    assert not Tokens()
