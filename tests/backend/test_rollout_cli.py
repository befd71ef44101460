"""The rollout CLI (backend.rollout_cli) on a real data directory, and the periodic check."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
from pathlib import Path

import pytest

from backend import catalogue, rollout_cli
from backend.rollout_schedule import check_periodically
from tests.backend.conftest import LiveServer, result_item
from tests.backend.rollout_helpers import assigned, publish, rollout_server, send

server = rollout_server


def _cli(server: LiveServer | None, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    for flag in ("--data-dir", "--db-url", "--storage-url"):
        common.add_argument(flag)
    rollout_cli.add_parser(sub, common)
    extra = ["--data-dir", str(server.settings.data_dir)] if server is not None else []
    args = parser.parse_args([*argv, *extra])
    return int(args.func(args))


def test_plan(capsys: pytest.CaptureFixture[str]) -> None:
    code = _cli(
        None,
        "rollout",
        "plan",
        "--baseline-rate",
        "0.5",
        "--min-difference",
        "0.1",
        "--icc",
        "0.05",
        "--results-per-device",
        "20",
    )
    assert code == 0
    assert capsys.readouterr().out.startswith("38 devices per arm")
    assert _cli(None, "rollout", "plan", "--baseline-rate", "2", "--min-difference", "0.1") == 2
    assert "baseline rate 2.0 must lie strictly between 0 and 1" in capsys.readouterr().out


def test_create_three_arms_report_and_pause(
    server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(server, tmp_path, "cli-m", ("1.0", "2.0", "3.0"))
    argv = ["rollout", "create", "cli-m", "1.0", "--arm", "2.0:0.25", "--arm", "3.0:0.25"]
    assert _cli(server, *argv, "--max-error-rate", "0.2") == 0
    out = capsys.readouterr().out
    assert "1.0 -> 2.0 25%, 3.0 25%" in out
    rid = int(out.split()[1].rstrip(":"))
    with server.state.sessions() as s:
        ro = catalogue.get_rollout(s, rid)
        assert ro.design is not None
        assert ro.design["guardrails"]["max_error_rate"] == 0.2
    assert _cli(server, "rollout", "report", str(rid), "--no-look") == 0
    assert "candidate-2" in capsys.readouterr().out
    assert _cli(server, "rollout", "pause", str(rid)) == 0
    assert "paused" in capsys.readouterr().out
    with pytest.raises(catalogue.CatalogueError, match="not active"):
        _cli(server, "rollout", "pause", str(rid))
    with pytest.raises(SystemExit):  # argparse refuses the share
        _cli(server, "rollout", "create", "cli-m", "1.0", "--arm", "2.0:1.5")


def test_periodic_check_pauses_a_breaching_rollout(server: LiveServer, tmp_path: Path) -> None:
    publish(server, tmp_path, "tick-m", ("1.0", "2.0"))
    with server.state.sessions() as s:
        rid = catalogue.create_rollout(
            s,
            server.state.repo,
            "tick-m",
            "1.0",
            "2.0",
            0.5,
            design={"guardrails": {"max_rejection_increase": 0.2, "min_devices": 1}},
        ).id
    for ws, a in assigned(server, 6, rid):
        bad = a["arm"] == "candidate"
        send(
            ws,
            [
                result_item(
                    model="tick-m",
                    version=a["version"],
                    decision="rejected" if bad else "accepted",
                )
                for _ in range(5)
            ],
        )

    fast = dataclasses.replace(
        server.state, settings=dataclasses.replace(server.state.settings, rollout_check_s=0.05)
    )

    async def tick() -> None:
        # the period from the settings (DOCTORAI_BACKEND_ROLLOUT_CHECK_S)
        task = asyncio.create_task(check_periodically(fast))
        try:
            for _ in range(100):
                await asyncio.sleep(0.05)
                with server.state.sessions() as s:
                    if catalogue.get_rollout(s, rid).status != "active":
                        return
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(tick())
    with server.state.sessions() as s:
        assert catalogue.get_rollout(s, rid).status == "paused"


def test_rollout_check_period_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.config import settings_from_env

    assert settings_from_env().rollout_check_s == 3600.0  # hourly unless told
    monkeypatch.setenv("DOCTORAI_BACKEND_ROLLOUT_CHECK_S", "0.25")
    assert settings_from_env().rollout_check_s == 0.25
    monkeypatch.setenv("DOCTORAI_BACKEND_ROLLOUT_CHECK_S", "hourly")
    with pytest.raises(
        SystemExit, match="DOCTORAI_BACKEND_ROLLOUT_CHECK_S='hourly' is not a number"
    ):
        settings_from_env()
