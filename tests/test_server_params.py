"""Bad parameters: every value a client can send to any route is answered with 2xx or 4xx in
the API's error shape, never a 500. The routes and their parameters come from the app itself,
so a route added later is covered without touching this file.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import waddle
from tests.conftest import wait_until
from tests.server_helpers import serving

# Values that have broken servers before, beside random ones: non-finite and huge numbers,
# numbers past int64, NUL, separators, names of axes and formats.
EDGES = [
    "",
    "0",
    "-1",
    "1",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e308",
    "-1e308",
    "1e-320",
    str(2**63),
    str(-(2**63) - 1),
    str(2**63 - 1),
    "9" * 40,
    "\x00",
    "a\x00b",
    "..",
    "../..",
    "/",
    "%",
    "'",
    '"',
    "\\",
    "x -> x",
    "step",
    "time",
    "loss",
    "epoch",
    "json",
    "arrow",
    "csv",
    "parquet",
    "summary.loss",
    "-config.lr",
    "running",
    "\ud7ff\U0010ffff",
]

JSON_EDGES = [
    None,
    0,
    -1,
    2**63,
    -(2**64),
    1e308,
    -1e308,
    math.nan,
    math.inf,
    "nan",
    "",
    "loss",
    [],
    {},
    True,
]

text = st.one_of(st.sampled_from(EDGES), st.text(max_size=20))
number = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
query_value = st.one_of(text, number)


def _json_value(schema: dict, spec: dict, known: dict) -> st.SearchStrategy:
    """Random JSON for a body: the schema's own shape for objects and arrays (so that inner
    fields are reached), else anything, biased towards edge values and known names."""
    anything = st.one_of(
        st.sampled_from(JSON_EDGES),
        st.integers(),
        st.floats(),
        st.text(max_size=10),
        st.sampled_from(list(known.values())),
    )
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if schema.get("type") == "array":
        items = _json_value(schema.get("items", {}), spec, known)
        return st.one_of(st.lists(items, max_size=3), anything)
    if schema.get("type") == "object":
        fields = {
            name: st.one_of(st.just(known.get(name, 1)), _json_value(inner, spec, known))
            for name, inner in schema.get("properties", {}).items()
        }
        return st.one_of(st.fixed_dictionaries({}, optional=fields), anything)
    return anything


def _requests(app, known: dict) -> st.SearchStrategy:
    """(method, path, params, body) for a random route of the app's OpenAPI description,
    with random values for its path and query parameters and its JSON body."""
    spec = app.openapi()
    operations = [
        (method.upper(), path, operation)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) > 15, "the app's routes were not found"

    @st.composite
    def request(draw):
        method, path, operation = draw(st.sampled_from(operations))
        parameters = operation.get("parameters", [])
        # Known values everywhere but in one or two parameters, so that a random value
        # reaches the code behind the checks of the others.
        names = [param["name"] for param in parameters]
        wild = draw(st.sets(st.sampled_from(names), max_size=2)) if names else set()
        params = {}
        for param in parameters:
            name = param["name"]
            value = draw(query_value) if name in wild else known.get(name)
            if param["in"] == "path":
                path = path.replace("{" + name + "}", _quote(value or "x"))
            elif value is not None:
                params[name] = value
        body = None
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            body = draw(_json_value(content["application/json"]["schema"], spec, known))
        return method, path, params, body

    return request()


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="") if value else "%20"


def test_no_parameter_value_makes_a_server_error(tmp_path):
    run = waddle.init(project="p", dir=tmp_path, settings=waddle.Settings(console=False))
    for step in range(300):
        run.log({"loss": 1.0 / (step + 1), "epoch": step // 10, "note": f"s{step}"})
    run.log({"hist": waddle.Histogram(np.arange(10.0))})
    run.log({"pic": waddle.Image(np.zeros((4, 4), dtype=np.uint8))})
    run.log({"rows": waddle.Table(columns=["a"], data=[[1]])})
    print("hello")
    run.alert("a", "b")
    run.finish()
    media = next(p for p in (run.dir / "media").iterdir() if p.suffix == ".png")
    known = {
        "project": "p",
        "run_id": run.id,
        "run": run.id,
        "key": "loss",
        "x": "epoch",
        "path": f"media/{media.name}",
        "points": "10",
        "limit": "5",
        "after": "3",
    }
    with serving(tmp_path) as s:
        wait_until(s.caught_up)

        @settings(
            max_examples=500,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            derandomize=True,
        )
        @given(_requests(s.app, known))
        def check(request):
            method, path, params, body = request
            # Python writes NaN and Infinity as bare words, which some JSON parsers accept.
            content = None if body is None else json.dumps(body)
            headers = {"Content-Type": "application/json"}
            response = s.client.request(
                method, path, params=params, content=content, headers=headers
            )
            assert response.status_code // 100 in (2, 4), (
                method,
                path,
                params,
                body,
                response.text,
            )
            if response.status_code >= 400:
                error = response.json()["error"]
                assert set(error) == {"code", "message"} and error["message"]

        check()


@pytest.mark.parametrize(
    "query",
    [
        "key=loss&start=-1e308&end=1e308&points=10",
        "key=loss&start=nan&points=5",
        "key=loss&end=inf",
        "key=loss&start=-1.7e308&end=1.7e308&points=7&x=epoch",
    ],
)
def test_bad_bounds_are_a_422_and_extreme_finite_bounds_work(tmp_path, query):
    run = waddle.init(project="p", dir=tmp_path, settings=waddle.Settings(console=False))
    for step in range(100):
        run.log({"loss": float(step), "epoch": step * 1e304})
    run.finish()
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        response = s.get(f"/api/projects/p/runs/{run.id}/scalars?{query}")
    if "nan" in query or "inf" in query:
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_parameter"
        assert "finite" in response.json()["error"]["message"]
    else:
        assert response.status_code == 200, response.text
        buckets = response.json()["buckets"]
        assert sum(buckets["count"]) == 100


def test_runs_text_search_matches_name_notes_and_tags(tmp_path):
    for name, tags, notes in (("alpha", ["vision"], ""), ("beta", ["audio"], "uses VISION too")):
        run = waddle.init(
            project="p",
            dir=tmp_path,
            name=name,
            tags=tags,
            notes=notes,
            settings=waddle.Settings(console=False),
        )
        run.finish()
    with serving(tmp_path) as s:
        wait_until(s.caught_up)
        names = {
            text: sorted(r["name"] for r in s.json("/api/projects/p/runs?text=" + text)["runs"])
            for text in ("vis", "aud", "ALPHA", "zzz")
        }
    assert names == {"vis": ["alpha", "beta"], "aud": ["beta"], "ALPHA": ["alpha"], "zzz": []}
