"""Malformed ids and values never make the backend answer 5xx (issue 15, hole 9).

Every path parameter, header and body field of the API is sent, through real HTTP, values a
client should never send: very long strings, non-ASCII, NUL bytes, lone surrogates, '../',
negative and huge integers, NaN and infinities, far-off dates, wrong types. Each answer must be a
4xx (or a 2xx where the value is legal) with a JSON body in the API's error shape: never a 500.
The same probe runs on SQLite and, where a PostgreSQL server can be started, on PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from backend.catalogue import add_model
from core.sync.wire import GENESIS_HASH
from tests.backend import pg
from tests.backend.conftest import LiveServer, Workstation, base_settings, make_package

LONG = "A" * 5000
STRINGS: list[str] = [
    LONG,
    "é中文🙂",
    "\x00",
    "a\x00b",
    "\ud800",  # a lone surrogate: valid JSON (an escape), not encodable as UTF-8
    "../../../../etc/passwd",
    "..",
    "%00",
    "%2e%2e%2f",
    "\n\r\t",
    "",
    " ",
    "-1",
    "9" * 30,
    "9" * 5000,
    "null",
]
NUMBERS: list[Any] = [
    -1,
    0,
    2**31,
    2**63,
    2**64,
    -(2**63) - 1,
    10**100,
    1.5,
    -0.0,
    1e308,
    float("nan"),  # json.dumps writes NaN / Infinity, which FastAPI's JSON reader accepts
    float("inf"),
    True,
]
# raw JSON number tokens: non-standard ones Python's JSON reader accepts, and too-long ones
RAW_NUMBERS = ["NaN", "-Infinity", "1e999", "9" * 5000, "-" + "9" * 30]
TYPES: list[Any] = [None, [], {}, [1, "x"], {"a": {"b": None}}]
DATES = [
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59",
    "2024-02-30T00:00:00Z",
    "1970-01-01T00:00:00Z",
]
VALUES: list[Any] = STRINGS + NUMBERS + TYPES + DATES
PATH_VALUES = [
    *STRINGS,
    "-1",
    "0",
    str(2**31),
    str(2**63),
    str(10**30),
    "1.5",
    "1e3",
    "%FF%FE",  # not UTF-8 once decoded
    "..%2F..%2F",
    "x" * 10000,
]
RAW = object()  # marks a body given as raw text


@dataclass
class Probe:
    """One request; ``what`` names it in the failure list."""

    what: str
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    raw: str | None = None


@dataclass
class Target:
    live: LiveServer
    ws: Workstation
    model: tuple[str, str]
    tuf_target: str
    head: tuple[int, str] = (-1, GENESIS_HASH)  # the audit chain head the server holds


def _segment(value: str) -> str:
    """A path segment as a client would put it on the wire; odd values stay odd."""
    if value.startswith("%") or "%2F" in value:
        return value
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _result_item() -> dict[str, Any]:
    return {
        "client_id": uuid.uuid4().hex,
        "created_at": datetime.now(UTC).isoformat(),
        "model_id": "probe-model",
        "model_version": "1.0",
        "decision": "accepted",
        "decided_at": datetime.now(UTC).isoformat(),
        "latency_ms": 10.0,
        "shadow": False,
        "rollout_id": None,
        "study_ref": "abc",
        "summary": {"label": "x", "score": 0.5},
    }


def _audit_event() -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "index": 0,
        "prev_hash": "0" * 64,
        "hash": "1" * 64,
        "created_at": datetime.now(UTC).isoformat(),
        "type": "viewed",
        "actor": "dr-a",
        "data": {"n": 1},
    }


def _body_probes(t: Target) -> Iterator[Probe]:
    """Each field of each request body in turn takes each malformed value; the rest of the
    body is valid, so the value is what reaches the database: a real enrolment code for the
    label, an audit event that extends the chain head the server holds (``t.head``)."""
    api = t.live.api
    device = {"Authorization": f"Bearer {t.ws.tokens['access_token']}"}
    bases: list[tuple[str, str, dict[str, Any], dict[str, str], str | None]] = [
        ("enrol", "/enrol", {"code": "ABCD-EFGH", "label": "probe"}, {}, None),
        ("token", "/token", {"device_id": t.ws.device_id, "device_secret": "x" * 40}, {}, None),
        ("refresh", "/token/refresh", {"refresh_token": "x.y.z"}, {}, None),
        ("results", "/results:batch", {"items": [_result_item()]}, device, "items"),
        ("audit", "/audit-events:batch", {"events": [_audit_event()]}, device, "events"),
    ]
    for name, path, base, headers, list_key in bases:
        fields = list(base[list_key][0]) if list_key else list(base)
        for fname in fields:
            for i, value in enumerate([*VALUES, *[(RAW, r) for r in RAW_NUMBERS]]):
                body = json.loads(json.dumps(base))
                target = body[list_key][0] if list_key else body
                if name == "enrol" and fname != "code":
                    target["code"] = t.live.enrol_code()
                elif name == "results":
                    target["client_id"] = uuid.uuid4().hex
                elif name == "audit":
                    index, prev = t.head
                    target.update(event_id=uuid.uuid4().hex, index=index + 1, prev_hash=prev)
                    target["hash"] = uuid.uuid4().hex * 2
                raw = None
                if isinstance(value, tuple):
                    target[fname] = "@RAW@"
                    raw = json.dumps(body).replace('"@RAW@"', value[1])
                elif fname in ("summary", "data"):
                    target[fname] = {"k": value, str(value)[:100]: 1}
                else:
                    target[fname] = value
                yield Probe(
                    f"{name}.{fname}={_show(value)}",
                    "POST",
                    api + path,
                    {**headers, "Idempotency-Key": f"probe-{name}-{fname}-{i}-{uuid.uuid4().hex}"},
                    None if raw else body,
                    raw,
                )
        if list_key:
            for i, value in enumerate(NUMBERS + TYPES):
                yield Probe(
                    f"{name}.{list_key}={_show(value)}",
                    "POST",
                    api + path,
                    {**headers, "Idempotency-Key": f"probe-list-{i}-{uuid.uuid4().hex}"},
                    {list_key: value},
                )


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        value = value[1]
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _path_probes(t: Target) -> Iterator[Probe]:
    api, url = t.live.api, t.live.url
    device = {"Authorization": f"Bearer {t.ws.tokens['access_token']}"}
    admin = t.live.admin_headers()
    model_id, version = t.model
    for v in PATH_VALUES:
        s = _segment(v)
        for method in ("GET", "HEAD"):
            yield Probe(
                f"{method} models/{{model_id}}={_show(v)}",
                method,
                f"{api}/models/{s}/{version}/file",
                device,
            )
            yield Probe(
                f"{method} models/{{version}}={_show(v)}",
                method,
                f"{api}/models/{model_id}/{s}/file",
                device,
            )
            # with a device's token, so each probe reaches the target path's own checks
            yield Probe(
                f"{method} tuf/targets/{{path}}={_show(v)}",
                method,
                f"{url}/tuf/targets/{s}",
                device,
            )
            yield Probe(
                f"{method} tuf/targets/models/{{path}}={_show(v)}",
                method,
                f"{url}/tuf/targets/models/{model_id}/{s}",
                device,
            )
        yield Probe(
            f"admin report {{rollout_id}}={_show(v)}",
            "GET",
            f"{api}/admin/rollouts/{s}/report",
            admin,
        )
        yield Probe(f"tuf/metadata/{{name}}={_show(v)}", "GET", f"{url}/tuf/metadata/{s}", {})
        yield Probe(
            f"tuf/metadata/{{name}}={_show(v)}.root.json",
            "GET",
            f"{url}/tuf/metadata/{s}.root.json",
            {},
        )
        # no endpoint takes query parameters: unknown ones are ignored, odd or not
        yield Probe(
            f"query ?x={_show(v)}", "GET", f"{api}/rollouts/assignment?x={s}&limit={s}", device
        )
        yield Probe(
            f"query admin alerts ?limit={_show(v)}",
            "GET",
            f"{api}/admin/security-alerts?limit={s}&device_id={s}",
            admin,
        )
    for n in ("9" * 5000, str(2**31), str(2**63), "-1", "٣"):
        yield Probe(
            f"tuf/metadata/{_show(n)}.root.json",
            "GET",
            f"{url}/tuf/metadata/{quote(n)}.root.json",
            {},
        )
        yield Probe(
            f"admin report {_show(n)}", "GET", f"{api}/admin/rollouts/{quote(n)}/report", admin
        )


def _header_probes(t: Target) -> Iterator[Probe]:
    api, url = t.live.api, t.live.url
    device = {"Authorization": f"Bearer {t.ws.tokens['access_token']}"}
    model_id, version = t.model
    file_url = f"{api}/models/{model_id}/{version}/file"
    tuf_url = f"{url}/tuf/targets/{t.tuf_target}"
    header_values = [
        LONG[:4000],
        "é",
        "9" * 5000,
        "bytes=0-" + "9" * 5000,
        "bytes=" + "9" * 5000 + "-",
        "bytes=-" + "9" * 5000,
        "bytes=5-1",
        "bytes=-0",
        "bytes=0-0,1-1",
        "bytes=٣-",
        "bytes=--",
        "bytes=" + "9" * 30 + "-",
        "items=0-1",
        "",
    ]
    for v in header_values:
        for u in (file_url, tuf_url):
            yield Probe(
                f"Range {_show(v)} on {u.rsplit('/', 1)[-1][:12]}", "GET", u, {**device, "Range": v}
            )
            yield Probe(
                f"If-Range {_show(v)}", "GET", u, {**device, "Range": "bytes=0-1", "If-Range": v}
            )
        yield Probe(
            f"Authorization Bearer {_show(v)}",
            "GET",
            f"{api}/models",
            {"Authorization": f"Bearer {v}".strip()},  # "Bearer " is not a legal header value
        )
        yield Probe(f"Authorization {_show(v)}", "GET", f"{api}/models", {"Authorization": v})
        yield Probe(  # targets check the token as the API does: odd ones are a 401, not a 5xx
            f"tuf target Authorization Bearer {_show(v)}",
            "GET",
            tuf_url,
            {"Authorization": f"Bearer {v}".strip()},
        )
        yield Probe(
            f"metrics Authorization {_show(v)}",
            "GET",
            f"{url}/metrics",
            {"Authorization": f"Bearer {v}".strip()},
        )
        yield Probe(
            f"Idempotency-Key {_show(v)}",
            "POST",
            f"{api}/results:batch",
            {**device, "Idempotency-Key": v},
            {"items": [_result_item()]},
        )
        yield Probe(
            f"Content-Type {_show(v)}",
            "POST",
            f"{api}/enrol",
            {"Content-Type": v},
            None,
            '{"code": "ABCD-EFGH"}',
        )
    for raw in (
        "{",
        "[]",
        "null",
        "{" * 5000,
        '{"code": "' + "\\ud800" * 10 + '"}',
        '{"items": ' + "[" * 5000 + "]" * 5000 + "}",
        "\xff\xfe",
        '{"code": 1e999}',
        '{"items": [' + "{" * 300 + "}" * 300 + "]}",
    ):
        for path in ("/enrol", "/results:batch", "/audit-events:batch", "/token"):
            yield Probe(
                f"raw body {_show(raw)} to {path}",
                "POST",
                api + path,
                {**device, "Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"},
                None,
                raw,
            )
    for odd in ("\ud800", "\x00", "é", LONG):  # an unknown field: its name is quoted back
        for path in ("/enrol", "/token", "/token/refresh"):
            raw = json.dumps({"code": "ABCD-EFGH", odd: 1})
            yield Probe(f"unknown field {_show(odd)} to {path}", "POST", api + path, {}, None, raw)
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "BREW"):
        yield Probe(f"method {method}", method, f"{api}/models", device)
    yield Probe("unknown route", "GET", f"{api}/nothing/here", device)


def _run(t: Target) -> list[str]:
    failures = []
    with httpx.Client(timeout=30) as client:
        # lazily: an audit probe is built after the previous answer moved the chain head
        for probe in itertools.chain(_path_probes(t), _header_probes(t), _body_probes(t)):
            content = None
            if probe.raw is not None:
                content = probe.raw.encode("utf-8", "surrogatepass")
            elif probe.body is not None:
                content = json.dumps(probe.body).encode()
            headers = (
                {"Content-Type": "application/json", **probe.headers} if content else probe.headers
            )
            wire = {k: v.encode("utf-8") for k, v in headers.items()}  # non-ASCII bytes as sent
            try:
                r = client.request(probe.method, probe.url, headers=wire, content=content)
            except httpx.HTTPError as exc:
                failures.append(f"{probe.what}: no answer ({exc!r})")
                continue
            if r.is_success and probe.url.endswith("/audit-events:batch"):
                head = r.json()["head"]
                t.head = (head["index"], head["hash"])
            if r.status_code >= 500:
                failures.append(f"{probe.what}: {r.status_code} {r.text[:120]!r}")
            elif r.status_code >= 400 and probe.method != "HEAD":
                try:
                    err = r.json()["error"]
                    assert isinstance(err["code"], str)
                    assert isinstance(err["message"], str)
                except (ValueError, KeyError, TypeError, AssertionError):
                    failures.append(
                        f"{probe.what}: {r.status_code} not in the error shape {r.text[:120]!r}"
                    )
    return failures


def _target(live: LiveServer, tmp: Path) -> Target:
    with live.state.sessions() as s:
        pkg = add_model(s, live.state.repo, make_package(tmp, "probe-model", "1.0", 4096))
        model = (pkg.model_id, pkg.version)
        base = pkg.target_path.rsplit("/", 1)
        tuf_target = f"{base[0]}/{pkg.sha256}.{base[1]}"
    return Target(live, live.workstation("probe"), model, tuf_target)


def test_no_malformed_value_gives_5xx_on_sqlite(tmp_path: Path) -> None:
    live = LiveServer(base_settings(tmp_path / "sqlite")).start()
    try:
        failures = _run(_target(live, tmp_path / "pkgs"))
    finally:
        live.stop()
    assert not failures, f"{len(failures)} probes failed:\n" + "\n".join(failures)


@pytest.mark.skipif(pg.unavailable_reason() is not None, reason=pg.unavailable_reason() or "")
def test_no_malformed_value_gives_5xx_on_postgres(tmp_path: Path) -> None:
    with pg.postgres_server() as url:
        live = LiveServer(base_settings(tmp_path / "pg", db_url=url)).start()
        try:
            failures = _run(_target(live, tmp_path / "pkgs"))
        finally:
            live.stop()
    assert not failures, f"{len(failures)} probes failed:\n" + "\n".join(failures)


def test_the_answers_name_the_problem(server: LiveServer, ws: Workstation) -> None:
    """A few of the values above, with the 4xx each now gets (each was a 500 before)."""
    admin = server.admin_headers()
    r = httpx.get(f"{server.api}/admin/rollouts/{2**63}/report", headers=admin)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request")
    r = httpx.get(f"{server.url}/tuf/metadata/{2**63}.root.json")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    r = ws.http.get("/models/a%00b/1.0/file")
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request")
    bad = {**_result_item(), "rollout_id": 2**63, "summary": {"k": "\ud800"}}
    r = ws.http.post(
        "/results:batch",
        content=json.dumps({"items": [bad]}),  # ASCII, "\ud800" as an escape
        headers={"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request")
    locs = [p["loc"] for p in r.json()["error"]["data"]["problems"]]
    assert ["body", "items", 0, "summary", "k"] in locs
    assert ["body", "items", 0, "rollout_id"] in locs
    nan = json.dumps({"events": [{**_audit_event(), "data": {"x": float("nan")}}]})
    r = ws.http.post(
        "/audit-events:batch",
        content=nan,
        headers={"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 422
    assert r.json()["error"]["data"]["problems"][0]["msg"] == "number must be finite"
    r = ws.http.get("/nowhere")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    r = ws.http.get(f"/models/probe/1.0/file{'x' * 3}")
    assert r.status_code == 404
