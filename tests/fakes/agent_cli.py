"""Stand-ins for the agent CLIs the ``cli`` backend runs: Claude Code (``claude``), aider and
OpenAI's Codex CLI (``codex``), with the flags and output shapes their documentation gives.

Run as ``python agent_cli.py claude|aider|codex <the CLI's own arguments>`` (tests put
wrappers named ``claude``, ``aider`` and ``codex`` on PATH). Each is as strict as the real
one where the backend could get it wrong: unknown flags are refused (argparse, exit 2), Claude
Code's ``--output-format stream-json`` without ``--verbose`` is refused, print mode needs a
prompt (argument or stdin), the API key must be in the environment, and Claude's permission
rules are applied (``acceptEdits``: file edits inside the working directory only; ``Bash``
only for commands listed in ``--allowedTools``; a bare tool name there, e.g. ``Write``, allows
that tool on any path, as in the real CLI; everything with ``--dangerously-skip-permissions``).

What the agent does comes from the task in its prompt (the SIS JSON block): it writes
``FAKE_CLI_CONTENT`` (default ``done\\n``) to each file the task names and runs the task's
validation commands through its Bash tool. Scenario knobs (environment):

``FAKE_CLI_TURNS`` (2), ``FAKE_CLI_TURN_SECONDS`` (0) and ``FAKE_CLI_TURN_TOKENS`` ("1000,200": input,output per turn,
priced at ``FAKE_CLI_PRICES``, default "3,15" $/MTok as Sonnet); ``FAKE_CLI_RATE_LIMIT=1`` (every API
call gets a 429: Claude retries, then ends with an error result); ``FAKE_CLI_AUTH_FAIL=1`` (every API call gets a 401; the
CLI keeps retrying); ``FAKE_CLI_WRITE=<path>`` (also write this path, e.g. outside the
worktree); ``FAKE_CLI_RUN=<shell command>`` (also run this through the Bash tool);
``FAKE_CLI_PAD_MB`` (print this many MB of progress before the end); ``FAKE_CLI_HOLD_STDOUT=<s>``
(leave a child sleeping ``s`` seconds holding stdout); ``FAKE_CLI_IGNORE_BUDGET=1`` (an older
CLI that does not stop at ``--max-budget-usd``); ``FAKE_CLI_DEFAULT_MODEL``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

# The CLI's own prices, $/token (Sonnet's by default): FAKE_CLI_PRICES="in,out" in $/MTok makes
# the CLI's reported cost differ from hybrid-tui's pricing table, as litellm's or Anthropic's
# figures may.
PRICE_IN, PRICE_OUT = (float(p) / 1e6 for p in os.environ.get("FAKE_CLI_PRICES", "3,15").split(","))


def task_of(prompt: str) -> dict:
    match = re.search(r"```json\n(.*?)\n```", prompt, re.S)
    if not match:
        raise SystemExit("fake agent: no SIS task in the prompt")
    return json.loads(match.group(1))


def turn_tokens() -> tuple[int, int]:
    given, taken = os.environ.get("FAKE_CLI_TURN_TOKENS", "1000,200").split(",")
    return int(given), int(taken)


def files_of(task: dict) -> list[str]:
    return [op["path"] for op in task.get("file_operations", [])]


def hold_stdout() -> None:
    seconds = os.environ.get("FAKE_CLI_HOLD_STDOUT")
    if seconds:  # a background child that inherits stdout and outlives the CLI
        subprocess.Popen(["sleep", seconds], stdout=sys.stdout, stderr=subprocess.DEVNULL)


def pad() -> None:
    megabytes = float(os.environ.get("FAKE_CLI_PAD_MB", "0"))
    line = "x" * 1023 + "\n"
    for _ in range(int(megabytes * 1024)):
        sys.stdout.write(line)


# ----------------------------------------------------------------------------- claude


def tool_rules(value: str) -> list[str]:
    """``--allowedTools`` value: rules separated by commas or spaces outside parentheses."""
    rules, current, depth = [], "", 0
    for char in value:
        if char in ", " and depth == 0:
            if current:
                rules.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    return [*rules, current] if current else rules



def subcommands(command: str) -> list[str]:
    """The parts of a compound shell command (``a && b``, ``a; b``, ``a | b``), each as written:
    Claude Code checks each against the permission rules on its own."""
    parts, start, quote, i = [], 0, None, 0
    while i < len(command):
        char = command[i]
        if quote:
            if char == "\\" and quote == '"':
                i += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "\\":
            i += 1
        elif command.startswith(("&&", "||"), i) or char in ";|\n" or (
                char == "&" and command[i - 1:i] not in (">", "<") and command[i + 1:i + 2] != ">"):
            parts.append(command[start:i])
            i += 2 if command.startswith(("&&", "||"), i) else 1
            start = i
            continue
        i += 1
    parts.append(command[start:])
    return [part.strip() for part in parts if part.strip()]


def claude(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="claude", allow_abbrev=False)
    parser.add_argument("prompt", nargs="?")
    parser.add_argument("-p", "--print", action="store_true")
    parser.add_argument("--output-format", choices=["text", "json", "stream-json"], default="text")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--model")
    parser.add_argument("--max-turns", type=int)
    parser.add_argument("--max-budget-usd", type=float)
    parser.add_argument("--permission-mode", choices=["default", "acceptEdits", "bypassPermissions", "plan"],
                        default="default")
    parser.add_argument("--allowedTools", "--allowed-tools", action="append", default=[])
    parser.add_argument("--dangerously-skip-permissions", action="store_true")
    args = parser.parse_args(argv)
    if not args.print:
        print("Error: Raw mode is not supported on the current process.stdin", file=sys.stderr)
        return 1
    if args.output_format == "stream-json" and not args.verbose:
        print("Error: When using --print, --output-format=stream-json requires --verbose", file=sys.stderr)
        return 1
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    if not prompt.strip():
        print("Error: Input must be provided either through stdin or as a prompt argument when using --print",
              file=sys.stderr)
        return 1
    session = str(uuid.uuid4())
    model = args.model or os.environ.get("FAKE_CLI_DEFAULT_MODEL", "claude-sonnet-4-5-20250929")
    stream = args.output_format == "stream-json"
    messages: list[dict] = []

    def emit(message: dict) -> None:
        message["session_id"] = session
        messages.append(message)
        if stream:
            print(json.dumps(message), flush=True)

    emit({"type": "system", "subtype": "init", "cwd": os.getcwd(), "model": model, "permissionMode": args.permission_mode,
          "apiKeySource": "ANTHROPIC_API_KEY", "tools": ["Bash", "Edit", "Read", "Write"]})
    if not os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("FAKE_CLI_AUTH_FAIL"):
        attempt = 0
        while True:  # as the issue found: Claude keeps retrying a 401 until it is killed
            attempt += 1
            error = '401 {"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}'
            if stream:
                emit({"type": "system", "subtype": "api_retry", "attempt": attempt, "max_retries": 10,
                      "retry_delay_ms": 200, "error_status": 401, "error": "authentication_failed"})
            print(f"API Error: {error} · Retrying in 0 seconds… (attempt {attempt}/10)", file=sys.stderr, flush=True)
            time.sleep(0.2)

    def end(result: dict) -> int:
        messages.append(result)
        if stream:
            print(json.dumps(result), flush=True)
        elif args.output_format == "json":
            print(json.dumps(messages if args.verbose else result), flush=True)
        else:
            print(result.get("result", result["subtype"]))
        return 1 if result["is_error"] else 0

    if os.environ.get("FAKE_CLI_RATE_LIMIT"):  # retried a few times, then an error result
        error = ('429 {"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed '
                 'the rate limit for your organization of 30,000 input tokens per minute."}}')
        for attempt in range(1, 4):
            if stream:
                emit({"type": "system", "subtype": "api_retry", "attempt": attempt, "max_retries": 3,
                      "retry_delay_ms": 50, "error_status": 429, "error": "rate_limit"})
            print(f"API Error: {error} · Retrying in 0 seconds… (attempt {attempt}/3)", file=sys.stderr, flush=True)
            time.sleep(0.05)
        return end({"type": "result", "subtype": "success", "is_error": True, "duration_ms": 300, "num_turns": 1,
                    "session_id": session, "total_cost_usd": 0, "result": f"API Error: {error}",
                    "usage": {"input_tokens": 0, "output_tokens": 0}, "modelUsage": {}, "permission_denials": []})

    rules = [rule for value in args.allowedTools for rule in tool_rules(value)]
    bypass = args.dangerously_skip_permissions or args.permission_mode == "bypassPermissions"
    denials: list[dict] = []
    cwd = Path.cwd().resolve()
    given, taken = turn_tokens()
    usage = {"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    cost = 0.0
    turns = 0

    def allowed(tool: str, tool_input: dict) -> bool:
        if bypass:
            return True
        if tool == "Bash":  # each subcommand of a compound command needs a rule of its own
            return all(f"Bash({part})" in rules for part in subcommands(tool_input["command"]))
        if tool in rules:
            # A bare tool rule (``--allowedTools Write``) allows the tool on any path: Claude Code
            # applies no working-directory limit to it (anthropics/claude-code#88038).
            return True
        target = Path(tool_input["file_path"]).resolve()
        inside = target == cwd or cwd in target.parents
        if tool == "Read":  # reading is allowed in the working directory without asking
            return inside
        return inside and args.permission_mode == "acceptEdits"  # acceptEdits: edits in the working directory

    def tool_use(tool: str, tool_input: dict) -> str:
        if not allowed(tool, tool_input):
            denials.append({"tool_name": tool, "tool_use_id": f"toolu_{len(denials)}", "tool_input": tool_input})
            return "Claude requested permissions to use " + tool + ", but you haven't granted it yet."
        if tool == "Read":
            return Path(tool_input["file_path"]).read_text()
        if tool == "Bash":
            done = subprocess.run(tool_input["command"], shell=True, capture_output=True, text=True)
            return done.stdout + done.stderr
        path = Path(tool_input["file_path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tool_input["content"])
        return f"File created successfully at: {path}"

    if "```json" not in prompt and Path(prompt.strip()).is_file():
        # `claude -p <path>`: the prompt is the path; the model reads the file (then does its task).
        actions: list[tuple[str, dict]] = [("Read", {"file_path": prompt.strip()})]
        if allowed(*actions[0]):
            prompt = Path(prompt.strip()).read_text()
    else:
        actions = []
    task = task_of(prompt) if "```json" in prompt else {"task_id": "?"}
    actions += [("Write", {"file_path": str(cwd / p), "content": os.environ.get("FAKE_CLI_CONTENT", "done\n")})
               for p in files_of(task)]
    if os.environ.get("FAKE_CLI_WRITE"):
        actions.append(("Write", {"file_path": os.environ["FAKE_CLI_WRITE"], "content": "written by the agent\n"}))
    if os.environ.get("FAKE_CLI_RUN"):
        actions.append(("Bash", {"command": os.environ["FAKE_CLI_RUN"]}))
    actions += [("Bash", {"command": c}) for c in task.get("validation", {}).get("commands", [])]
    wanted_turns = max(int(os.environ.get("FAKE_CLI_TURNS", "2")), len(actions))
    subtype = "success"
    for turn in range(wanted_turns):
        if args.max_turns is not None and turns >= args.max_turns:
            subtype = "error_max_turns"
            break
        budget = args.max_budget_usd
        if budget is not None and cost >= budget and not os.environ.get("FAKE_CLI_IGNORE_BUDGET"):
            subtype = "error_max_budget_usd"
            break
        if turn:
            time.sleep(float(os.environ.get("FAKE_CLI_TURN_SECONDS", "0")))  # the model thinking
        turns += 1
        usage["input_tokens"] += given
        usage["output_tokens"] += taken
        cost += given * PRICE_IN + taken * PRICE_OUT
        content: list[dict] = [{"type": "text", "text": f"turn {turn + 1}"}]
        if turn < len(actions):
            tool, tool_input = actions[turn]
            content.append({"type": "tool_use", "id": f"toolu_{turn}", "name": tool, "input": tool_input})
        emit({"type": "assistant", "message": {"id": f"msg_{turn}", "type": "message", "role": "assistant", "model": model,
                                               "content": content, "usage": {"input_tokens": given, "output_tokens": taken}}})
        if turn < len(actions):
            emit({"type": "user", "message": {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": f"toolu_{turn}", "content": tool_use(*actions[turn])}]}})
    pad()
    hold_stdout()
    is_error = subtype != "success"
    result = {
        "type": "result", "subtype": subtype, "is_error": is_error, "duration_ms": 1200, "duration_api_ms": 900,
        "num_turns": turns, "session_id": session, "total_cost_usd": round(cost, 6), "usage": usage,
        "modelUsage": {model: {"inputTokens": usage["input_tokens"], "outputTokens": usage["output_tokens"],
                               "costUSD": round(cost, 6), "contextWindow": 200000}},
        "permission_denials": denials,
    }
    if not is_error:
        result["result"] = "Made the change for " + task["task_id"]
    return end(result)


# ----------------------------------------------------------------------------- codex


def codex(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="codex", allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("exec")
    run.add_argument("prompt", nargs="?")
    run.add_argument("--json", action="store_true")
    run.add_argument("--full-auto", action="store_true")  # kept by clap only to refuse it
    run.add_argument("--sandbox", "-s", choices=["read-only", "workspace-write", "danger-full-access"])
    run.add_argument("--skip-git-repo-check", action="store_true")
    run.add_argument("--model", "-m")
    run.add_argument("--cd", "-C")
    args = parser.parse_args(argv)
    if args.full_auto:  # codex-rs/exec/src/cli.rs: the flag was deprecated, then removed
        print("Error: `--full-auto` has been removed; use `--sandbox workspace-write` instead.", file=sys.stderr)
        return 1
    if args.cd:
        os.chdir(args.cd)
    prompt = sys.stdin.read() if args.prompt in (None, "-") else args.prompt
    if not prompt.strip():
        print("No prompt provided via stdin.", file=sys.stderr)
        return 1
    if not (Path(".git").exists() or args.skip_git_repo_check):
        print("Not inside a trusted directory and --skip-git-repo-check was not specified.", file=sys.stderr)
        return 1

    def event(data: dict) -> None:
        print(json.dumps(data), flush=True)

    event({"type": "thread.started", "thread_id": "019a-" + uuid.uuid4().hex[:12]})
    event({"type": "turn.started"})
    # codex exec authenticates with CODEX_API_KEY or the login saved in $CODEX_HOME/auth.json;
    # it does not read OPENAI_API_KEY from the environment.
    codex_home = Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex")
    logged_in = os.environ.get("CODEX_API_KEY") or (codex_home / "auth.json").is_file()
    if not logged_in or os.environ.get("FAKE_CLI_AUTH_FAIL"):
        event({"type": "error", "message": "unexpected status 401 Unauthorized: Incorrect API key provided"})
        event({"type": "turn.failed", "error": {"message": "unexpected status 401 Unauthorized: Incorrect API key provided"}})
        return 1
    writable = args.sandbox in ("workspace-write", "danger-full-access")  # the default is read-only
    task = task_of(prompt)
    given, taken = turn_tokens()
    for index, path in enumerate(files_of(task)):
        status = "completed" if writable else "failed"
        if writable:
            Path(path).write_text(os.environ.get("FAKE_CLI_CONTENT", "done\n"))
        event({"type": "item.completed", "item": {"id": f"item_{index}", "type": "file_change", "status": status,
                                                   "changes": [{"path": path, "kind": "add"}]}})
    for command in task.get("validation", {}).get("commands", []):
        done = subprocess.run(command, shell=True, capture_output=True, text=True)
        event({"type": "item.completed", "item": {"id": "cmd", "type": "command_execution", "command": command,
                                                   "aggregated_output": done.stdout, "exit_code": done.returncode,
                                                   "status": "completed"}})
    pad()
    event({"type": "item.completed", "item": {"id": "msg", "type": "agent_message", "text": "Done: " + task["task_id"]}})
    event({"type": "turn.completed", "usage": {"input_tokens": given, "cached_input_tokens": given // 4,
                                               "output_tokens": taken}})
    return 0


# ----------------------------------------------------------------------------- aider


def aider(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="aider", allow_abbrev=False)
    parser.add_argument("files", nargs="*")
    parser.add_argument("--message", "--msg", "-m")
    parser.add_argument("--message-file", "-f")
    parser.add_argument("--model")
    for flag in ("--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-gitignore", "--no-check-update",
                 "--no-show-release-notes", "--analytics-disable", "--no-pretty", "--no-stream",
                 "--no-restore-chat-history", "--auto-test"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("--chat-history-file", default=".aider.chat.history.md")
    parser.add_argument("--input-history-file", default=".aider.input.history")
    parser.add_argument("--test-cmd")
    args = parser.parse_args(argv)
    prompt = Path(args.message_file).read_text() if args.message_file else args.message
    if not prompt:
        print("aider: no message", file=sys.stderr)
        return 2
    # aider resolves its model aliases (aider/models.py MODEL_ALIASES) and names the model in
    # its "Main model:" line, with litellm's provider prefix.
    aliases = {"sonnet": "anthropic/claude-sonnet-4-20250514", "haiku": "claude-3-5-haiku-20241022"}
    model = aliases.get(args.model or "", args.model) or "anthropic/claude-sonnet-4-5-20250929"
    Path(args.chat_history_file).write_text("# aider chat started\n")  # its history, where it is told
    cache = Path(".aider.tags.cache.v4")  # the repo map's tag cache: always in the repository root
    cache.mkdir(exist_ok=True)
    (cache / "cache.db").write_bytes(b"SQLite format 3\x00" + bytes(64))
    Path(args.input_history_file).write_text(prompt)
    if not args.no_gitignore:
        with open(".gitignore", "a") as ignore:
            ignore.write(".aider*\n")
    print(f"Aider v0.86.1\nMain model: {model} with diff edit format, infinite output\nGit repo: .git with 2 files")
    if not os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("FAKE_CLI_AUTH_FAIL"):
        print('litellm.AuthenticationError: AnthropicException - {"type":"error","error":'
              '{"type":"authentication_error","message":"invalid x-api-key"}}')
        return 0  # aider reports the error and exits as if nothing happened
    task = task_of(prompt)
    given, taken = turn_tokens()
    session = 0.0
    for turn in range(int(os.environ.get("FAKE_CLI_TURNS", "2"))):
        message = given * PRICE_IN + taken * PRICE_OUT
        session += message
        if turn == 0:
            for path in files_of(task):
                Path(path).write_text(os.environ.get("FAKE_CLI_CONTENT", "done\n"))
                print(f"Applied edit to {path}")
        print(f"Tokens: {given / 1000:.1f}k sent, {taken} received. Cost: ${message:.4f} message, ${session:.4f} session.",
              flush=True)
    if args.auto_test and args.test_cmd:
        subprocess.run(args.test_cmd, shell=True)
    pad()
    return 0


if __name__ == "__main__":
    name, rest = sys.argv[1], sys.argv[2:]
    sys.exit({"claude": claude, "codex": codex, "aider": aider}[name](rest))
