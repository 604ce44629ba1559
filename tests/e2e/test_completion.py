"""End-to-end: `queuectl completion bash|zsh|fish` prints a script that loads in its
shell and completes in a scripted session: command and subcommand names,
options, states, config keys and (from the database) job ids.

A shell that is not installed skips its tests with a message, except under
CI=true, where it fails (.ci/run installs zsh and fish).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from e2e_util import QUEUECTL

pytestmark = [pytest.mark.e2e, pytest.mark.backends("sqlite")]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BIN = os.path.dirname(QUEUECTL[0]) if len(QUEUECTL) == 1 else None


def need(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        message = f"{shell} is not installed (apt-get install {shell})"
        if IN_CI:
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture
def script(cli, tmp_path):
    """script(shell) -> the path of the generated script; the cli's environment
    gets queuectl on PATH (the scripts call it for job ids)."""
    if BIN is None:
        if IN_CI:
            pytest.fail("CI=true and the queuectl console script is not installed",
                        pytrace=False)
        pytest.skip("the queuectl console script is not installed")
    cli.env["PATH"] = BIN + os.pathsep + cli.env.get("PATH", "")

    def make(shell: str) -> str:
        need(shell)
        path = tmp_path / f"queuectl.{shell}"
        path.write_text(cli.ok("completion", shell))
        return str(path)
    return make


def sh(cli, argv: list[str]) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, capture_output=True, text=True, env=cli.env, cwd=cli.cwd,
                       timeout=60)
    assert p.returncode == 0, (argv, p.stdout, p.stderr)
    return p


# Each shell: a scripted session that prints what `queuectl WORDS<TAB>` offers,
# one candidate a line (the last word is the one being completed).

def bash_complete(cli, script: str, words: list[str]) -> list[str]:
    code = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _queuectl; '
            'printf "%s\\n" "${COMPREPLY[@]}"')
    out = sh(cli, ["bash", "--norc", "-c", code, "bash", script, *words]).stdout
    return [x for x in out.splitlines() if x]


def zsh_complete(cli, script: str, words: list[str]) -> list[str]:
    # compadd works only inside a completion widget: this one prints what it
    # is given after `--` that matches the word being completed, as zsh would.
    code = ('compadd() { local a past=; for a; do if [[ -n $past ]]; then '
            '[[ $a == ${words[CURRENT]}* ]] && print -r -- $a; '
            'elif [[ $a == -- ]]; then past=1; fi; done; return 0 }; '
            'autoload -U compinit && compinit -u -D; source "$1"; shift; '
            'words=("$@"); CURRENT=$#; _queuectl')
    out = sh(cli, ["zsh", "-f", "-c", code, "zsh", script, *words]).stdout
    return [x for x in out.splitlines() if x]


def fish_complete(cli, script: str, words: list[str]) -> list[str]:
    line = " ".join(words)
    out = sh(cli, ["fish", "--no-config", "-c",
                   'source $argv[1]; complete -C"$argv[2]"', script, line]).stdout
    return [x.split("\t")[0] for x in out.splitlines() if x]


COMPLETE = {"bash": bash_complete, "zsh": zsh_complete, "fish": fish_complete}
CHECK = {"bash": ["bash", "-n"], "zsh": ["zsh", "-n"], "fish": ["fish", "--no-execute"]}


@pytest.mark.parametrize("shell", COMPLETE)
def test_the_script_loads_in_its_shell(cli, script, shell):
    path = script(shell)
    sh(cli, [*CHECK[shell], path])
    text = open(path).read()
    assert "queuectl" in text and len(text) > 1000


@pytest.mark.parametrize("shell", COMPLETE)
def test_the_script_completes_names_options_states_keys_and_ids(cli, script, shell):
    path = script(shell)
    complete = COMPLETE[shell]
    cli.ok("add", "--id", "job-one", "--", "true")
    cli.ok("add", "--id", "job-two", "--", "true")
    assert complete(cli, path, ["queuectl", "li"]) == ["list"]
    assert set(complete(cli, path, ["queuectl", "comp"])) == {"completion"}
    assert set(complete(cli, path, ["queuectl", "worker", "st"])) == {"start", "stop"}
    assert complete(cli, path, ["queuectl", "worker", "start", "--cou"]) == ["--count"]
    assert "--skip-existing" in complete(cli, path, ["queuectl", "add", "--sk"])
    assert complete(cli, path, ["queuectl", "list", "--state", "pen"]) == ["pending"]
    assert complete(cli, path, ["queuectl", "config", "set", "claim"]) == ["claim_ahead"]
    assert complete(cli, path, ["queuectl", "completion", "fi"]) == ["fish"]
    assert sorted(complete(cli, path, ["queuectl", "show", "job-"])) == ["job-one", "job-two"]
    assert sorted(complete(cli, path, ["queuectl", "--db", cli.db, "logs", "job-"])) == \
        ["job-one", "job-two"]
    assert complete(cli, path, ["queuectl", "_i"]) == []        # the helper stays hidden


@pytest.mark.parametrize("shell", COMPLETE)
def test_every_command_of_the_parser_is_in_the_script(cli, script, shell):
    from queuectl.cli.shell import commands
    text = open(script(shell)).read()
    for command in commands()[1:]:
        assert command.path in text, command.path


def test_ids_helper_lists_the_newest_ids_quietly(cli):
    assert cli.ok("_ids") == ""                     # no database yet: nothing, no error
    for n in range(3):
        cli.ok("add", "--id", f"j{n}", "--", "true")
    assert cli.ok("_ids").split() == ["j2", "j1", "j0"]
