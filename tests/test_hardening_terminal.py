"""Issue 11, item 4: every text a user or a log supplied is shown exactly as recorded, never
interpreted by the terminal or by rich: markup (`[red]`, `[/bold]`, `[link=...]`, `[/]`)
and control sequences (CSI, OSC, C1), in `history`, `show`, `log` and error messages."""

from __future__ import annotations

import re

import pytest
from helpers.builders import created, event, jsonl, run_cli

from ledger import Ledger

HOSTILE = ["[red]9[/red]", "[/bold]", "[link=https://evil.example]click[/link]", "[/]",
           "\x1b[2J\x1b[31mred", "\x1b]0;pwned\x07", "\x1b]8;;https://evil.example\x1b\\x\x1b]8;;\x1b\\",
           "\x9b31m C1 CSI", "a\rb"]
#: what a terminal would act on: ESC, BEL, CR, C1 controls
_ACTS = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")


@pytest.mark.parametrize("text", HOSTILE)
def test_recorded_text_is_shown_as_recorded(ledger: Ledger, text: str) -> None:
    ledger.append([created("C", "draft", "d1"), created("C", "draft", "d2")])
    ledger.append([event("generation.removed", cohort_id="C", stage="draft", gen_id="d1", reason=text)],)
    env = {"USER": text}
    r = run_cli("seal", "C", "--reason", text, ledger=ledger.path, env=env)
    assert r.returncode == 0, r.stderr
    visible = text.replace("\x1b", "\\u001b").replace("\x07", "\\u0007").replace("\x9b", "\\u009b").replace(
        "\r", "\\u000d")
    for args in (("history", "C"), ("log",), ("log", "--cohort", "C")):
        r = run_cli(*args, ledger=ledger.path, env={"COLUMNS": "400"})
        assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr
        assert not _ACTS.search(r.stdout), (args, r.stdout)
        if args[0] == "history":
            assert visible.encode() in r.stdout, r.stdout
    r = run_cli("show", "C", ledger=ledger.path)
    assert r.returncode == 0 and not _ACTS.search(r.stdout), r.stdout


@pytest.mark.parametrize("text", HOSTILE)
def test_error_messages_quote_user_text_safely(ledger: Ledger, text: str) -> None:
    r = run_cli("show", text, ledger=ledger.path)
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1, r.stderr
    assert not _ACTS.search(r.stderr), r.stderr
    r = run_cli("append", ledger=ledger.path, stdin=jsonl({"type": "cohort.opened", "id": "x",
                                                           "data": {"cohort_id": text}}))
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1 and not _ACTS.search(r.stderr), r.stderr
