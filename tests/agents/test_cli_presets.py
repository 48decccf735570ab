"""The ``cli`` backend's presets (claude-code, aider, codex) and raw templates, against
stand-in CLIs with the real ones' flags and output shapes (tests/fakes/agent_cli.py), in a
real git worktree. Each test reproduces one of the behaviours issue 19 found."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
import uuid
from pathlib import Path

import anyio
import psutil
import pytest

from hybrid_tui.agents.base import AttemptLimits, ImplementRequest
from hybrid_tui.agents.cli import CliImplementer, TemplateError
from hybrid_tui.agents.cli.reports import AiderReader, ClaudeCodeReader, CodexReader
from hybrid_tui.spec.models import SisTask, Usage
from hybrid_tui.workspace.sandbox import Sandbox

from .conftest import SECRET_KEY, cost_of

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "agent_cli.py"
TURN = 1000 * 3e-6 + 200 * 15e-6  # one fake turn's cost at the fake's (and the tests') Sonnet prices


@pytest.fixture
def clis(tmp_path: Path, monkeypatch) -> Path:
    """Wrappers named claude, aider and codex first on PATH, and the keys they need."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "aider", "codex"):
        wrapper = bin_dir / name
        wrapper.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(FAKE))} {name} \"$@\"\n")
        wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET_KEY)
    monkeypatch.setenv("CODEX_API_KEY", "sk-openai-test-key-123456")  # what `codex exec` reads
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex-home"))  # no saved login of the host's
    for knob in [k for k in os.environ if k.startswith("FAKE_CLI_")]:
        monkeypatch.delenv(knob)
    return bin_dir


def request_for(worktree: Path, tmp_path: Path, *, checks=("test -f sub.txt",), intent="create it",
                **kwargs) -> ImplementRequest:
    task = SisTask.model_validate({
        "task_id": "sub", "title": "Add sub.txt",
        "file_operations": [{"op": "intent", "path": "sub.txt", "intent": intent}],
        "validation": {"commands": list(checks)},
    })
    return ImplementRequest(
        run_id="run-1", task=task, attempt=1, agent_id="agent-1", model=kwargs.pop("model", "claude-sonnet-4-5"),
        sandbox=Sandbox(worktree, declared=task.declared_files), log_path=tmp_path / "logs" / "sub.1.log",
        cost_of=cost_of, **kwargs,
    )


def implement(template: str, request: ImplementRequest):
    return anyio.run(CliImplementer(template).implement, request)


def marker() -> str:
    return f"600.{uuid.uuid4().int % 10**9:09d}"


def alive(mark: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline", "status"])
            if p.info["status"] != psutil.STATUS_ZOMBIE and mark in " ".join(p.info["cmdline"] or [])]


def gone(mark: str, within: float = 10.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if not alive(mark):
            return True
        time.sleep(0.05)
    return False


# --------------------------------------------------------------------- claude-code


def test_claude_code_preset_edits_runs_the_validation_and_books_the_reported_cost(worktree, tmp_path, clis):
    """Issue items 1, 2, 7 and 8: prompt on stdin, acceptEdits for the worktree, the validation
    command allowed, stream-json read, cost and model as the CLI reported them, session kept."""
    request = request_for(worktree, tmp_path)
    result = implement("claude-code", request)
    assert result.ok, result.message
    assert (worktree / "sub.txt").read_text() == "done\n"
    assert result.files_touched == ["sub.txt"]
    assert result.cost_usd == pytest.approx(round(2 * TURN, 6))  # 2 turns: the write, the validation command
    assert result.usage == Usage(input_tokens=2000, output_tokens=400)
    assert result.model == "claude-sonnet-4-5"  # the model the CLI says it ran
    assert len(result.session_id) == 36
    log = request.log_path.read_text()
    assert "--permission-mode acceptEdits" in log and "--max-budget-usd 1" in log and "--max-turns 40" in log
    assert "Bash(test -f sub.txt)" in log and '"permission_denials": []' in log
    assert SECRET_KEY not in log


def test_a_compound_validation_command_is_allowed_part_by_part(worktree, tmp_path, clis):
    """Claude Code checks each part of ``a && b`` against the rules on its own: a rule for the
    whole command alone got every attempt's validation run refused."""
    request = request_for(worktree, tmp_path, checks=("test -f sub.txt && grep -q done sub.txt",
                                                      "cat sub.txt | grep -c done"))
    result = implement("claude-code", request)
    assert result.ok, result.message


def test_the_readme_template_of_old_edits_nothing_and_is_no_longer_a_success(worktree, tmp_path, clis):
    """Item 1: ``claude -p {prompt_file} --output-format json`` (default permissions): Claude
    gets the path as its prompt, is refused reading it (outside the worktree), exits 0 with
    permission_denials; that is an agent_error now, not a success."""
    request = request_for(worktree, tmp_path)
    result = implement("claude -p {prompt_file} --output-format json", request)
    assert (result.ok, result.failure_type) == (False, "agent_error")
    assert "refused" in result.message and "Read" in result.message and "sub.1.prompt.md" in result.message
    assert not (worktree / "sub.txt").exists()
    assert result.cost_usd > 0  # the refused turns were still paid for


def test_verbose_json_array_output_is_read(worktree, tmp_path, clis):
    """Item 2: ``--output-format json --verbose`` prints a JSON array; its result is read."""
    request = request_for(worktree, tmp_path, checks=())
    result = implement("claude -p --output-format json --verbose --permission-mode acceptEdits {prompt_stdin}", request)
    assert result.ok, result.message
    assert result.cost_usd == pytest.approx(round(2 * TURN, 6)) and result.session_id


def test_a_result_after_50_mb_of_output_is_read_and_the_log_is_capped(worktree, tmp_path, clis, monkeypatch):
    """Items 2 and 9: the result line comes last after 50 MB; the log keeps head and tail."""
    monkeypatch.setenv("FAKE_CLI_PAD_MB", "50")
    request = request_for(worktree, tmp_path)
    result = implement("claude-code", request)
    assert result.ok, result.message
    assert result.cost_usd == pytest.approx(round(2 * TURN, 6))
    size = request.log_path.stat().st_size
    assert size < 25_000_000
    log = request.log_path.read_bytes()
    assert b"bytes of output dropped here" in log and b'"type": "result"' in log[-100_000:]


def test_the_dollar_cap_is_passed_to_the_cli_and_its_budget_stop_is_budget_exhausted(worktree, tmp_path, clis, monkeypatch):
    """Item 3: --max-budget-usd reaches the CLI; its error_max_budget_usd result is
    budget_exhausted with the spend it reported recorded."""
    monkeypatch.setenv("FAKE_CLI_TURNS", "10")
    request = request_for(worktree, tmp_path, limits=AttemptLimits(max_cost_usd=0.01))
    result = implement("claude-code", request)
    assert (result.ok, result.failure_type) == (False, "budget_exhausted")
    assert result.cost_usd == pytest.approx(round(2 * TURN, 6))  # it stops at the first turn over $0.01
    assert "--max-budget-usd 0.01" in request.log_path.read_text()


def test_a_cli_that_does_not_stop_at_the_cap_is_stopped_by_hybrid_tui(worktree, tmp_path, clis, monkeypatch):
    """Item 3: cap $0.01, the CLI would spend $0.117; it is stopped when its reported usage
    crosses the cap, and the attempt fails budget_exhausted instead of finishing."""
    monkeypatch.setenv("FAKE_CLI_TURNS", "20")
    monkeypatch.setenv("FAKE_CLI_IGNORE_BUDGET", "1")
    monkeypatch.setenv("FAKE_CLI_TURN_SECONDS", "0.3")
    request = request_for(worktree, tmp_path, checks=(), limits=AttemptLimits(max_cost_usd=0.01))
    template = "claude -p --output-format stream-json --verbose --permission-mode acceptEdits {prompt_stdin}"
    result = implement(template, request)
    assert (result.ok, result.failure_type) == (False, "budget_exhausted")
    assert "cost limit $0.0100" in result.message
    assert 0.01 < result.cost_usd <= 0.01 + TURN  # stopped within one turn of the cap, every token booked


def test_the_cap_also_stops_a_cli_that_reports_its_cost_over_it_at_the_end(worktree, tmp_path, clis, monkeypatch):
    """Item 3 as found: an attempt that recorded $0.117 with a $0.01 cap finished 'done'."""
    monkeypatch.setenv("FAKE_CLI_TURNS", "20")
    monkeypatch.setenv("FAKE_CLI_IGNORE_BUDGET", "1")
    request = request_for(worktree, tmp_path, checks=(), limits=AttemptLimits(max_cost_usd=0.01))
    result = implement("claude -p --output-format json --permission-mode acceptEdits {prompt_stdin}", request)
    assert (result.ok, result.failure_type) == (False, "budget_exhausted")
    assert result.cost_usd == pytest.approx(round(20 * TURN, 6))  # the CLI's own figure, recorded as it is


@pytest.mark.parametrize("template", [
    "claude-code",
    "aider",
    "claude -p --output-format json --permission-mode acceptEdits {prompt_stdin}",
])
def test_the_spend_recorded_is_the_cli_s_own_figure_not_the_pricing_table_s(worktree, tmp_path, clis, monkeypatch,
                                                                           template):
    """Done-when: recorded spend equals the CLI's reported cost. The CLI prices at twice the
    table's rates here, so a reader that fell back to pricing the tokens would record half."""
    monkeypatch.setenv("FAKE_CLI_PRICES", "6,30")
    result = implement(template, request_for(worktree, tmp_path, checks=()))
    assert result.ok, result.message
    assert result.cost_usd == pytest.approx(2 * 2 * TURN)  # two turns at the CLI's prices
    assert result.usage.input_tokens == 2000 and result.usage.output_tokens == 400


def test_a_cli_that_ignores_the_turn_limit_is_stopped_by_hybrid_tui(worktree, tmp_path, clis, monkeypatch):
    """A template that does not pass {max_turns}: the turns the CLI streams are counted and
    it is stopped past the limit, every turn it was paid for booked."""
    monkeypatch.setenv("FAKE_CLI_TURNS", "10")
    monkeypatch.setenv("FAKE_CLI_TURN_SECONDS", "0.3")
    request = request_for(worktree, tmp_path, checks=(), limits=AttemptLimits(max_turns=3))
    result = implement("claude -p --output-format stream-json --verbose --permission-mode acceptEdits {prompt_stdin}",
                       request)
    assert (result.ok, result.failure_type) == (False, "agent_error")
    assert result.message == "turn limit 3 reached; stopped"
    assert result.usage.input_tokens == 4000  # stopped on the fourth turn's message


def test_a_rate_limit_the_cli_gave_up_on_is_rate_limited_with_its_words(worktree, tmp_path, clis, monkeypatch):
    monkeypatch.setenv("FAKE_CLI_RATE_LIMIT", "1")
    result = implement("claude-code", request_for(worktree, tmp_path))
    assert (result.ok, result.failure_type) == (False, "rate_limited")
    assert "rate_limit_error" in result.message and "30,000 input tokens per minute" in result.message


def test_turn_limit_reaches_the_cli_and_is_an_agent_error(worktree, tmp_path, clis, monkeypatch):
    monkeypatch.setenv("FAKE_CLI_TURNS", "10")
    request = request_for(worktree, tmp_path, limits=AttemptLimits(max_turns=3))
    result = implement("claude-code", request)
    assert (result.ok, result.failure_type) == (False, "agent_error")
    assert "turn limit 3 reached" in result.message
    assert result.cost_usd == pytest.approx(round(3 * TURN, 6))


def test_a_401_stops_the_attempt_at_once_as_an_auth_error_not_a_timeout(worktree, tmp_path, clis, monkeypatch):
    """Item 9: Claude retries a 401 silently; hybrid-tui reads it and stops (not retried)."""
    monkeypatch.setenv("FAKE_CLI_AUTH_FAIL", "1")
    request = request_for(worktree, tmp_path, limits=AttemptLimits(timeout_seconds=120))
    result = implement("claude-code", request)
    assert (result.ok, result.failure_type) == (False, "auth_error")
    assert "401" in result.message or "authentication" in result.message  # its own words, not "timed out"
    assert result.duration_seconds < 30  # stopped at once, not at the 120 s timeout


def test_a_401_shown_only_on_stderr_is_an_auth_error_too(worktree, tmp_path, clis, monkeypatch):
    monkeypatch.setenv("FAKE_CLI_AUTH_FAIL", "1")
    request = request_for(worktree, tmp_path, limits=AttemptLimits(timeout_seconds=120))
    result = implement("claude -p --output-format json --permission-mode acceptEdits {prompt_stdin}", request)
    assert result.failure_type == "auth_error" and "authentication_error" in result.message


def test_a_timed_out_attempt_records_the_spend_the_cli_reported_so_far(worktree, tmp_path, clis, monkeypatch):
    """Item 2: a timeout recorded $0 although the API was called."""
    request = request_for(worktree, tmp_path, checks=("sleep 30",), limits=AttemptLimits(timeout_seconds=3))
    result = implement("claude-code", request)
    assert result.failure_type == "timeout"
    assert result.cost_usd == pytest.approx(2 * TURN)  # two assistant turns streamed before the hang
    assert result.session_id


def test_an_attempt_ended_from_outside_has_reported_what_the_cli_spent_so_far(worktree, tmp_path, clis, monkeypatch):
    """Item 2 as a run meets it: the coordinator's attempt clock starts at dispatch, so it
    cancels a hanging CLI before the CLI's own timer does; the attempt then recorded $0. The
    spend streamed so far (one turn, the model Claude named) reaches report_spend as it comes."""
    monkeypatch.setenv("FAKE_CLI_TURNS", "3")
    monkeypatch.setenv("FAKE_CLI_TURN_SECONDS", "60")
    monkeypatch.setenv("FAKE_CLI_DEFAULT_MODEL", "claude-opus-4-1-20250805")
    reports: list[tuple] = []
    request = request_for(worktree, tmp_path, checks=(), limits=AttemptLimits(timeout_seconds=120),
                          report_spend=lambda *spend: reports.append(spend))
    template = "claude -p --output-format stream-json --verbose --permission-mode acceptEdits {prompt_stdin}"

    async def cancelled_from_outside():
        with anyio.move_on_after(4):
            await CliImplementer(template).implement(request)

    anyio.run(cancelled_from_outside)
    assert reports[-1] == (Usage(input_tokens=1000, output_tokens=200), pytest.approx(TURN), "claude-opus-4-1-20250805")


def test_cost_is_booked_to_the_model_the_cli_used(worktree, tmp_path, clis, monkeypatch):
    """Item 8: a template without --model: the CLI's own default is the attempt's model."""
    monkeypatch.setenv("FAKE_CLI_DEFAULT_MODEL", "claude-opus-4-1-20250805")
    request = request_for(worktree, tmp_path, checks=())
    result = implement("claude -p --output-format stream-json --verbose --permission-mode acceptEdits {prompt_stdin}",
                       request)
    assert result.ok and result.model == "claude-opus-4-1-20250805"


def test_a_200_kib_prompt_reaches_the_cli_on_stdin(worktree, tmp_path, clis):
    """Item 7: no 'Argument list too long' with the preset; a raw {prompt} that long is a
    clear error naming the fix."""
    request = request_for(worktree, tmp_path, intent="E" * 200 * 1024)
    result = implement("claude-code", request)
    assert result.ok, result.message
    assert len(request.log_path.with_name("sub.1.prompt.md").read_bytes()) > 200 * 1024
    request = request_for(worktree, tmp_path, checks=(), intent="E" * 200 * 1024)
    result = implement("claude -p {prompt} --output-format json --permission-mode acceptEdits", request)
    assert result.failure_type == "agent_error" and "{prompt_stdin}" in result.message
    assert "Argument list too long" not in result.message


def test_a_child_left_behind_is_killed_when_the_cli_finishes(worktree, tmp_path, clis, monkeypatch):
    """Item 4: ``nohup sleep &`` through Claude's Bash tool outlived the run."""
    mark = marker()
    # Through a validation command: the preset allows those in Claude's Bash tool.
    result = implement("claude-code", request_for(worktree, tmp_path, checks=(f"nohup sleep {mark} >/dev/null 2>&1 &",)))
    assert result.ok, result.message
    assert gone(mark)


def test_a_child_holding_stdout_does_not_turn_a_finish_into_a_timeout(worktree, tmp_path, clis, monkeypatch):
    """Item 4: a child holding stdout turned a 1-second finish into a 'timeout' and survived."""
    mark = marker()
    monkeypatch.setenv("FAKE_CLI_HOLD_STDOUT", mark)
    request = request_for(worktree, tmp_path, limits=AttemptLimits(timeout_seconds=60))
    result = implement("claude-code", request)
    assert result.ok, result.message  # not a timeout
    assert gone(mark)


def test_a_write_outside_the_worktree_fails_the_attempt_with_the_path(worktree, tmp_path, clis, monkeypatch):
    """Item 6: with --dangerously-skip-permissions Claude wrote into the user's checkout."""
    checkout = tmp_path / "user-checkout"
    checkout.mkdir()
    (checkout / "old.txt").write_text("old\n")
    target = checkout / "src" / "stray.py"
    monkeypatch.setenv("FAKE_CLI_WRITE", str(target))
    request = request_for(worktree, tmp_path, checks=(), protected_roots=(checkout,))
    result = implement("claude -p --output-format json --dangerously-skip-permissions {prompt_stdin}", request)
    assert (result.ok, result.failure_type) == (False, "agent_error")
    assert str(target) in result.message and "old.txt" not in result.message


def test_a_permission_denial_outside_the_worktree_is_an_agent_error(worktree, tmp_path, clis, monkeypatch):
    monkeypatch.setenv("FAKE_CLI_WRITE", str(tmp_path / "elsewhere.txt"))
    result = implement("claude-code", request_for(worktree, tmp_path))
    assert (result.ok, result.failure_type) == (False, "agent_error")
    assert "elsewhere.txt" in result.message and not (tmp_path / "elsewhere.txt").exists()


# --------------------------------------------------------------------- aider and codex


def test_aider_preset_reads_its_text_cost_and_keeps_its_history_out_of_the_worktree(worktree, tmp_path, clis):
    """Items 2 and 5: aider's 'Cost: $X message, $Y session' is its cost; its history files
    go to the attempt's scratch folder and it does not touch .gitignore."""
    request = request_for(worktree, tmp_path)
    result = implement("aider", request)
    assert result.ok, result.message
    assert result.cost_usd == pytest.approx(round(2 * TURN, 4))
    assert result.model == "claude-sonnet-4-5"
    assert result.usage.input_tokens == 2000 and result.usage.output_tokens == 400
    assert (worktree / ".aider.tags.cache.v4").is_dir()  # aider's tag cache is in the worktree, but
    assert result.files_touched == ["sub.txt"]  # not reported as the task's work; no .gitignore edit
    assert (tmp_path / "logs" / "sub.1.agent" / "aider.chat.history.md").exists()


def test_aider_books_the_model_its_main_model_line_names(worktree, tmp_path, clis):
    """Item 8 for aider: given an alias, aider runs (and bills) the model it resolves it to."""
    result = implement("aider", request_for(worktree, tmp_path, model="sonnet"))
    assert result.ok, result.message
    assert result.model == "claude-sonnet-4-20250514"


def test_aider_auth_error_is_an_auth_error_although_it_exits_0(worktree, tmp_path, clis, monkeypatch):
    monkeypatch.setenv("FAKE_CLI_AUTH_FAIL", "1")
    result = implement("aider", request_for(worktree, tmp_path))
    assert result.failure_type == "auth_error" and "invalid x-api-key" in result.message


def test_codex_preset_reads_its_jsonl_usage_and_thread(worktree, tmp_path, clis):
    request = request_for(worktree, tmp_path, model="gpt-5-codex")
    result = implement("codex", request)
    assert result.ok, result.message
    assert (worktree / "sub.txt").read_text() == "done\n"  # a sandbox that lets it write the worktree
    assert "--sandbox workspace-write" in request.log_path.read_text()  # not the removed --full-auto
    assert result.usage == Usage(input_tokens=750, output_tokens=200, cache_read_tokens=250)
    assert result.cost_usd == pytest.approx(cost_of("gpt-5-codex", result.usage))  # codex reports no dollars
    assert result.model == "gpt-5-codex" and result.session_id.startswith("019a-")
    assert result.summary == "Done: sub"


@pytest.mark.parametrize("preset, knobs, spent", [
    ("aider", {"FAKE_CLI_TURNS": "10"}, 10 * TURN),  # its cost lines, as aider prints them
    ("codex", {"FAKE_CLI_TURN_TOKENS": "10000,1000"}, cost_of("gpt-5", Usage(input_tokens=7500, output_tokens=1000,
                                                                            cache_read_tokens=2500))),
])
def test_the_cap_fails_an_aider_or_codex_attempt_that_crossed_it(worktree, tmp_path, clis, monkeypatch, preset, knobs,
                                                                  spent):
    """Neither CLI takes a dollar cap: their reported spend is held to it (Codex reports its
    usage only when its turn ends: the attempt fails then, its spend recorded)."""
    for name, value in knobs.items():
        monkeypatch.setenv(name, value)
    request = request_for(worktree, tmp_path, model="gpt-5" if preset == "codex" else "claude-sonnet-4-5",
                          limits=AttemptLimits(max_cost_usd=0.01))
    result = implement(preset, request)
    assert (result.ok, result.failure_type) == (False, "budget_exhausted")
    assert 0.01 < result.cost_usd <= spent + 1e-9


def test_codex_401_is_an_auth_error(worktree, tmp_path, clis, monkeypatch):
    monkeypatch.setenv("FAKE_CLI_AUTH_FAIL", "1")
    result = implement("codex", request_for(worktree, tmp_path, model="gpt-5-codex"))
    assert result.failure_type == "auth_error" and "401" in result.message


# --------------------------------------------------------------------- templates and readers


def test_template_placeholders_for_every_limit():
    from hybrid_tui.agents.cli.command import CommandValues, build_command

    values = CommandValues(prompt_file="/p.md", prompt="do it", worktree="/w", task_id="t", attempt=2, model="m",
                           max_turns=7, max_cost_usd=0.25, max_tokens=9000, timeout_seconds=90.0, scratch_dir="/s")
    command = build_command("agent {max_turns} {max_cost_usd} {max_tokens} {timeout_seconds} {attempt} "
                            "{scratch_dir} {model} {prompt_stdin}", values)
    assert command.argv == ["agent", "7", "0.25", "9000", "90", "2", "/s", "m"] and command.prompt_on_stdin
    with pytest.raises(TemplateError, match=r"unknown placeholder \{max_cost\}"):
        CliImplementer("agent {max_cost}")
    with pytest.raises(TemplateError, match="whole argument"):
        CliImplementer("agent --in={prompt_stdin}")


def test_the_presets_command_lines():
    """Each preset's flags exist in the real CLI (an unknown flag fails every attempt) and give
    no permission beyond the worktree and the validation commands."""
    from hybrid_tui.agents.cli.command import CommandValues, build_command

    values = CommandValues(prompt_file="/r/logs/t.1.prompt.md", prompt="do it", worktree="/w", task_id="t", attempt=1,
                           model="m", max_turns=7, max_cost_usd=0.25, max_tokens=9000, timeout_seconds=90.0,
                           scratch_dir="/r/logs/t.1.agent",
                           validation_commands=["pytest -q", "ruff check . && mypy src", "(cd docs && make)"])
    claude = build_command("claude-code", values)
    assert claude.argv == [
        "claude", "-p", "--output-format", "stream-json", "--verbose", "--model", "m", "--max-turns", "7",
        "--max-budget-usd", "0.25", "--permission-mode", "acceptEdits", "--allowedTools",
        "Bash(pytest -q),Bash(ruff check . && mypy src),Bash(ruff check .),Bash(mypy src),Bash((cd docs && make))",
    ] and claude.prompt_on_stdin
    codex = build_command("codex", values)
    assert codex.argv == ["codex", "exec", "--json", "--sandbox", "workspace-write", "--skip-git-repo-check",
                          "--model", "m", "-C", "/w", "-"] and codex.prompt_on_stdin
    aider = build_command("aider", values)
    assert aider.argv[:3] == ["aider", "--message-file", "/r/logs/t.1.prompt.md"] and not aider.prompt_on_stdin
    assert aider.argv[-3:] == ["--test-cmd", "pytest -q && ruff check . && mypy src && (cd docs && make)", "--auto-test"]
    assert "--chat-history-file" in aider.argv and "/r/logs/t.1.agent/aider.chat.history.md" in aider.argv
    assert "do it" not in claude.argv + codex.argv + aider.argv  # the prompt is never an argument


def test_readers_take_the_documented_shapes():
    claude = ClaudeCodeReader()
    result = {"type": "result", "subtype": "success", "is_error": False, "result": "ok", "session_id": "s-1",
              "total_cost_usd": 0.25, "usage": {"input_tokens": 10, "output_tokens": 5},
              "modelUsage": {"claude-haiku-4-5": {"costUSD": 0.01}, "claude-opus-4-1": {"costUSD": 0.24}},
              "permission_denials": []}
    # Asked for haiku (the init message), opus did most of the work: the result's modelUsage decides.
    claude.finish(json.dumps([{"type": "system", "subtype": "init", "model": "claude-haiku-4-5"}, result], indent=2),
                  complete=True)
    report = claude.report
    assert (report.cost_usd, report.model, report.session_id, report.error_kind) == (0.25, "claude-opus-4-1", "s-1", None)
    tail_only = ClaudeCodeReader()  # the start of the output was dropped: the result is found at the end
    tail_only.finish('xxx", "more"}]\n' + json.dumps(result), complete=False)
    assert tail_only.report.cost_usd == 0.25

    codex = CodexReader("gpt-5")
    for event in ({"type": "thread.started", "thread_id": "th"}, {"type": "turn.completed",
                  "usage": {"input_tokens": 100, "cached_input_tokens": 40, "output_tokens": 7}}):
        codex.feed_line(json.dumps(event))
    assert codex.report.usage == Usage(input_tokens=60, output_tokens=7, cache_read_tokens=40)

    aider = AiderReader()
    for line in ("Main model: anthropic/claude-sonnet-4-5 with diff edit format",
                 "Tokens: 12k sent, 1.2k cache write, 3.4k cache hit, 150 received. Cost: $0.05 message, $0.12 session."):
        aider.feed_line(line)
    assert aider.report.cost_usd == 0.12 and aider.report.model == "claude-sonnet-4-5"
    assert aider.report.usage == Usage(input_tokens=12000, output_tokens=150, cache_read_tokens=3400,
                                       cache_write_tokens=1200)


def test_a_running_cli_is_found_and_killed_by_crash_recovery(worktree, tmp_path, clis, monkeypatch):
    """A coordinator killed mid-attempt leaves the CLI running; the next one kills its group
    from the ``.pgid`` file next to the attempt log (as for validation commands)."""
    from hybrid_tui.workspace.validation import kill_orphaned_checks

    monkeypatch.setenv("FAKE_CLI_TURNS", "3")
    monkeypatch.setenv("FAKE_CLI_TURN_SECONDS", "600")
    request = request_for(worktree, tmp_path, checks=())
    group_file = request.log_path.with_name("sub.1.log.pgid")
    killed: list[int] = []

    async def main():
        async with anyio.create_task_group() as group:
            outcome = {}

            async def attempt():
                outcome["result"] = await CliImplementer("claude-code").implement(request)

            group.start_soon(attempt)
            with anyio.fail_after(60):  # safety net
                while not group_file.exists():
                    await anyio.sleep(0.05)
            killed.extend(kill_orphaned_checks(request.log_path.parent))
        return outcome["result"]

    result = anyio.run(main)
    assert killed and result.failure_type == "agent_error" and "exit status -9" in request.log_path.read_text()
    assert not group_file.exists()
