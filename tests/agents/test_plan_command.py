"""``hybrid-tui plan`` against the scripted Messages API server (real SDK, real mission folder)."""

from __future__ import annotations

import json

from fakes.messages_server import message, tool_use

from hybrid_tui.app.main import main
from hybrid_tui.costs.pricing import PricingTable
from hybrid_tui.spec.loader import load_mission
from hybrid_tui.spec.models import Usage

from .conftest import SECRET_KEY
from .test_anthropic_planner import invalid_sis, valid_sis


def test_plan_writes_valid_sis_files_and_prices_them(tiny_mission, api_env, tmp_path, capsys):
    out = tmp_path / "planned"
    api_env.push(message(tool_use("submit_sis", invalid_sis("001-sub")), input_tokens=4000, output_tokens=500),
                 message(tool_use("submit_sis", valid_sis("001-sub")), input_tokens=4600, output_tokens=450))
    code = main(["plan", str(tiny_mission), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    written = json.loads((out / "001-sub.json").read_text())
    assert written["issue"]["id"] == "001-sub" and written["tasks"][0]["task_id"] == "001-sub-1"
    table = PricingTable.load()
    expected = table.cost("claude-haiku-4-5", Usage(input_tokens=8600, output_tokens=950))
    assert f"${expected:.4f}" in captured.out
    # The planner saw the repository: its file tree and the file the issue talks about.
    first = api_env.message_requests[0]
    assert first["model"] == "claude-haiku-4-5"
    assert "calc.py" in first["messages"][0]["content"]
    assert SECRET_KEY not in captured.out + captured.err
    # A planned file is a SIS the mission accepts: drop it in place of the recorded one.
    (tiny_mission / "sis" / "001-sub.json").write_text((out / "001-sub.json").read_text())
    (tiny_mission / "replay" / "sub.json").unlink()
    assert [t.task_id for t in load_mission(tiny_mission).tasks] == ["001-sub-1"]


def test_plan_batch_and_failure_exit_code(tiny_mission, api_env, tmp_path, capsys):
    out = tmp_path / "planned"
    api_env.push(message(tool_use("submit_sis", invalid_sis())), message(tool_use("submit_sis", invalid_sis())))
    code = main(["plan", str(tiny_mission), "--out", str(out), "--batch", "--poll", "0"])
    captured = capsys.readouterr()
    assert code == 1
    assert "001-sub: FAILED agent_error: sis/001-sub.json:tasks[0]" in captured.out
    assert not (out / "001-sub.json").exists()
    assert "(batch price)" in captured.err
    assert len([r for r in api_env.requests if r.path == "/v1/messages/batches"]) == 2


def test_plan_refuses_bad_input_before_spending(tiny_mission, api_env, monkeypatch, capsys):
    # The recorded SIS exists: no overwrite without --force, and no request was sent.
    assert main(["plan", str(tiny_mission)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["plan", str(tiny_mission), "--issue", "nope", "--force"]) == 2
    assert main(["plan", str(tiny_mission), "--model", "unknown-model", "--force"]) == 2
    assert "unknown model 'unknown-model'" in capsys.readouterr().err
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert main(["plan", str(tiny_mission), "--force"]) == 2
    assert "ANTHROPIC_API_KEY" in capsys.readouterr().err
    assert api_env.requests == []


def test_rerunning_plan_points_at_issue_for_the_issues_without_a_sis(tiny_mission, api_env, capsys):
    (tiny_mission / "issues" / "002-mul.md").write_text("# Add multiplication\n\ncalc needs mul().\n")
    assert main(["plan", str(tiny_mission)]) == 2
    err = capsys.readouterr().err
    assert "001-sub.json already exists" in err and "--issue 002-mul" in err and "--force" in err
    assert api_env.requests == []


def test_plan_retries_429_and_529_honouring_retry_after(tiny_mission, api_env, tmp_path, capsys):
    from fakes.messages_server import error, overloaded

    api_env.push(error(429, "rate limited", {"retry-after": "2"}), overloaded(),
                 message(tool_use("submit_sis", valid_sis("001-sub"))))
    code = main(["plan", str(tiny_mission), "--out", str(tmp_path / "planned")])
    assert code == 0, capsys.readouterr().err
    assert len(api_env.message_requests) == 3
    sent = [r.at for r in api_env.requests if r.path == "/v1/messages"]
    assert sent[1] - sent[0] >= 2.0  # the server's retry-after, not the ~1 s first backoff
    assert (tmp_path / "planned" / "001-sub.json").exists()


def test_plan_batch_prints_its_id_and_resume_fetches_a_batch_later(tiny_mission, api_env, tmp_path, capsys):
    import anthropic

    out = tmp_path / "planned"
    api_env.push(message(tool_use("submit_sis", valid_sis("001-sub")), input_tokens=3000, output_tokens=300))
    assert main(["plan", str(tiny_mission), "--out", str(out), "--batch", "--poll", "0"]) == 0
    (batch_id,) = api_env.batches
    err = capsys.readouterr().err
    assert f"--batch --resume {batch_id}" in err

    # A batch submitted by an earlier `plan` that stopped before it ended: fetch it by id.
    api_env.push(message(tool_use("submit_sis", valid_sis("001-sub")), input_tokens=2000, output_tokens=200))
    first_params = api_env.batches[batch_id]["requests"][0]
    client = anthropic.Anthropic(api_key=SECRET_KEY, base_url=api_env.base_url, max_retries=0)
    earlier = client.messages.batches.create(requests=[first_params])
    out.joinpath("001-sub.json").unlink()
    code = main(["plan", str(tiny_mission), "--out", str(out), "--batch", "--resume", earlier.id, "--poll", "0"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (out / "001-sub.json").exists()
    creates = [r for r in api_env.requests if r.method == "POST" and r.path == "/v1/messages/batches"]
    assert len(creates) == 2  # the first plan's and the "earlier" one: resuming submitted nothing
    table = PricingTable.load()
    expected = table.cost("claude-haiku-4-5", Usage(input_tokens=2000, output_tokens=200), batch=True)
    assert f"${expected:.4f}" in captured.out
    assert main(["plan", str(tiny_mission), "--resume", earlier.id, "--force"]) == 2
    assert "--resume BATCH_ID needs --batch" in capsys.readouterr().err


def test_plan_resume_of_a_batch_the_api_does_not_know_is_refused_in_one_line(tiny_mission, api_env, tmp_path, capsys):
    api_env.expect_rejections = True  # the id is refused (404), as the API would
    out = tmp_path / "planned"
    code = main(["plan", str(tiny_mission), "--out", str(out), "--batch", "--resume", "msgbatch_typo", "--poll", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--resume msgbatch_typo: the API has no such Message Batch" in err and "cancelled" not in err
    assert [(r.method, r.path) for r in api_env.requests] == [("GET", "/v1/messages/batches/msgbatch_typo")]
    assert not out.exists()
