"""Help and shell completion: `help [COMMAND]`, `completion bash|zsh|fish`, and
the hidden `_ids` the completion scripts call for job ids.

The scripts are generated from the argparse parser (cli/parser.py): every
command, subcommand and option is there, with its help as the description
where the shell shows one. Nothing here is needed at run time by anything else.
"""

from __future__ import annotations

import argparse
import sys
from argparse import Namespace

from queuectl.cli.parser import IDS_COMMAND, build_parser
from queuectl.config import KEYS
from queuectl.model import STATES

# What the value of an option, or a command's first positional argument, is.
OPTION_VALUES = {"--state": "states", "--db": "files", "--file": "files", "-f": "files",
                 "--cwd": "dirs", "--job-id": "ids", "--after": "ids"}
POSITIONAL_VALUES = {"id": "ids", "ids": "ids", "key": "keys", "file": "files",
                     "topic": "commands", "words": "command"}
IDS_LIMIT = 1000        # the newest ids offered


def help_(args: Namespace) -> int:
    """`queuectl help [COMMAND...]` is `queuectl [COMMAND...] --help`."""
    build_parser().parse_args([*args.topic, "--help"])
    return 0


def ids(args: Namespace) -> int:
    """The newest job ids, one a line (for completion: quiet, never an error)."""
    from queuectl.cli.jobs import open_db
    try:
        with open_db(args, quiet=True) as store:
            jobs = store.list_jobs(None, IDS_LIMIT, newest_first=True)
    except Exception:
        return 0
    sys.stdout.write("".join(j.id + "\n" for j in jobs))
    return 0


def completion(args: Namespace) -> int:
    sys.stdout.write({"bash": bash, "zsh": zsh, "fish": fish}[args.shell](commands()))
    return 0


# ---------------------------------------------------------------- the parser as data

class Option:
    def __init__(self, names: list[str], help: str, value: str | None):
        # value: None for a flag, "" for a value with no completion, else a kind
        # (states, keys, ids, files, dirs) or "words:a b c" (fixed choices).
        self.names, self.help, self.value = names, help, value


class Command:
    def __init__(self, path: str, help: str):
        self.path, self.help = path, help       # path: "q", "q/worker", "q/worker/start"
        self.subs: list[Command] = []
        self.options: list[Option] = []
        self.positional: str | None = None       # what its first positional argument is
        self.many = False                       # ... and whether every later one too

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def _words(words: object) -> str:
    return "words:" + " ".join(str(w) for w in words)   # type: ignore[attr-defined]


def commands() -> list[Command]:
    """Every command of the parser, the root ("q") first, parents before children."""
    out: list[Command] = []

    def walk(parser: argparse.ArgumentParser, node: Command) -> None:
        out.append(node)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help or "" for a in action._choices_actions}
                for name, sub in action.choices.items():
                    if name in helps:               # hidden commands have no help
                        child = Command(f"{node.path}/{name}", helps[name])
                        node.subs.append(child)
                        walk(sub, child)
            elif action.option_strings:
                if action.help == argparse.SUPPRESS:
                    continue
                value: str | None = None
                if action.nargs != 0:
                    kinds = [OPTION_VALUES[o] for o in action.option_strings
                             if o in OPTION_VALUES]
                    value = (_words(action.choices) if action.choices else
                             kinds[0] if kinds else "")
                node.options.append(Option(list(action.option_strings),
                                           " ".join((action.help or "").split()), value))
            elif node.positional is None and action.dest != "==SUPPRESS==":
                node.positional = (_words(action.choices) if action.choices else
                                   POSITIONAL_VALUES.get(action.dest, ""))
                node.many = action.nargs in ("*", "+")

    walk(build_parser(), Command("q", ""))
    return out


def _value_options(cmds: list[Command]) -> list[str]:
    return sorted({n for c in cmds for o in c.options if o.value is not None for n in o.names})


def _literal(kind: str, cmds: list[Command]) -> "list[str] | None":
    """The fixed words of a kind (None for ids, files, dirs and commands)."""
    if kind.startswith("words:"):
        return kind[6:].split()
    return {"states": list(STATES), "keys": list(KEYS),
            "commands": [c.name for c in cmds[0].subs]}.get(kind)


def _sh(text: str) -> str:
    """Single-quoted for fish (where \\ and \\' are the escapes inside quotes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _q(text: str) -> str:
    """Single-quoted for bash and zsh: ' becomes '\\''."""
    return "'" + text.replace("'", "'\\''") + "'"


# ---------------------------------------------------------------- bash

def bash(cmds: list[Command]) -> str:
    valopts = "|".join(_value_options(cmds))
    paths = "|".join(_q(c.path) for c in cmds[1:])
    value_cases, option_cases, positional_cases = [], [], []
    seen: set[str] = set()
    for c in cmds:
        for o in c.options:
            key = "|".join(o.names)
            if o.value and key not in seen:
                seen.add(key)
                value_cases.append(f"        {key}) _queuectl_values {_q(o.value)}; return;;")
        words = " ".join(n for o in c.options for n in o.names)
        option_cases.append(f"            {_q(c.path)}) opts={_q(words)};;")
        if c.subs:
            subs = " ".join(s.name for s in c.subs)
            positional_cases.append(
                f"        {_q(c.path)}) COMPREPLY=($(compgen -W {_q(subs)} -- \"$cur\"));;")
        elif c.positional:
            cond = "" if c.many else "((npos == 0)) && "
            positional_cases.append(
                f"        {_q(c.path)}) {cond}_queuectl_values {_q(c.positional)};;")
    literal = []
    for kind in ("states", "keys", "commands"):
        literal.append(f"        {kind}) COMPREPLY=($(compgen -W "
                       f"{_q(' '.join(_literal(kind, cmds) or []))} -- \"$cur\"));;")
    return f"""# bash completion for queuectl (generated by `queuectl completion bash`).
# Install: source <(queuectl completion bash)   (e.g. in ~/.bashrc), or
#   queuectl completion bash > ~/.local/share/bash-completion/completions/queuectl

_queuectl_values() {{
    case $1 in
        words:*) COMPREPLY=($(compgen -W "${{1#words:}}" -- "$cur"));;
{chr(10).join(literal)}
        ids) COMPREPLY=($(compgen -W \
                "$(command queuectl "${{db[@]}}" {IDS_COMMAND} 2>/dev/null)" -- "$cur"));;
        files) COMPREPLY=($(compgen -f -- "$cur"));;
        dirs) COMPREPLY=($(compgen -d -- "$cur"));;
        command) if ((npos == 0)); then COMPREPLY=($(compgen -c -- "$cur"));
                 else COMPREPLY=($(compgen -f -- "$cur")); fi;;
    esac
}}

_queuectl() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    local qpath=q w i npos=0 skip= rest= opts=
    local -a db=()
    COMPREPLY=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        if [[ -n $rest ]]; then ((npos++)); continue; fi
        if [[ -n $skip ]]; then [[ $skip == --db ]] && db=(--db "$w"); skip=; continue; fi
        case $w in
            --) [[ $qpath == q/add ]] && rest=1; continue;;
            {valopts}) skip=$w; continue;;
            -*) continue;;
        esac
        case $qpath/$w in
            {paths}) qpath=$qpath/$w;;
            *) ((npos++));;
        esac
    done
    if [[ -z $rest ]]; then
        case $prev in
{chr(10).join(value_cases)}
        esac
        if [[ $cur == -* ]]; then
            case $qpath in
{chr(10).join(option_cases)}
            esac
            COMPREPLY=($(compgen -W "$opts" -- "$cur"))
            return
        fi
    fi
    case $qpath in
{chr(10).join(positional_cases)}
    esac
}}

complete -F _queuectl queuectl
"""


# ---------------------------------------------------------------- zsh

def zsh(cmds: list[Command]) -> str:
    valopts = "|".join(_value_options(cmds))
    paths = "|".join(_q(c.path) for c in cmds[1:])
    value_cases, option_cases, positional_cases = [], [], []
    seen: set[str] = set()
    for c in cmds:
        for o in c.options:
            key = "|".join(o.names)
            if o.value and key not in seen:
                seen.add(key)
                value_cases.append(f"        {key}) _queuectl_values {_q(o.value)}; return;;")
        pairs = [(n, o.help) for o in c.options for n in o.names]
        option_cases.append(
            f"        {_q(c.path)}) cands=({' '.join(_q(n) for n, _ in pairs)}); "
            f"descs=({' '.join(_q(f'{n} -- {h}' if h else n) for n, h in pairs)});;")
        if c.subs:
            positional_cases.append(
                f"        {_q(c.path)}) cands=({' '.join(_q(s.name) for s in c.subs)}); "
                f"descs=({' '.join(_q(f'{s.name} -- {s.help}') for s in c.subs)});;")
        elif c.positional:
            cond = "" if c.many else "(( npos == 0 )) && "
            positional_cases.append(
                f"        {_q(c.path)}) {cond}_queuectl_values {_q(c.positional)}; return;;")
    literal = []
    for kind in ("states", "keys", "commands"):
        words = " ".join(_q(w) for w in _literal(kind, cmds) or [])
        literal.append(f"        {kind}) cands=({words});;")
    return f"""#compdef queuectl
# zsh completion for queuectl (generated by `queuectl completion zsh`).
# Install: queuectl completion zsh > "${{fpath[1]}}/_queuectl"  (then a new shell), or
#   source <(queuectl completion zsh)   (in ~/.zshrc, after compinit)

_queuectl_values() {{
    local -a cands
    case $1 in
        words:*) cands=(${{=1#words:}});;
{chr(10).join(literal)}
        ids) cands=(${{(f)"$(command queuectl $db {IDS_COMMAND} 2>/dev/null)"}});;
        files) _files; return;;
        dirs) _files -/; return;;
        command) if (( npos == 0 )); then _command_names -e; else _files; fi; return;;
        *) return;;
    esac
    compadd -- $cands
}}

_queuectl() {{
    local qpath=q w i npos=0 skip= rest=
    local -a db cands descs
    for (( i = 2; i < CURRENT; i++ )); do
        w=${{words[i]}}
        if [[ -n $rest ]]; then (( npos++ )); continue; fi
        if [[ -n $skip ]]; then [[ $skip == --db ]] && db=(--db $w); skip=; continue; fi
        case $w in
            --) [[ $qpath == q/add ]] && rest=1; continue;;
            {valopts}) skip=$w; continue;;
            -*) continue;;
        esac
        case $qpath/$w in
            {paths}) qpath=$qpath/$w;;
            *) (( npos++ ));;
        esac
    done
    local cur=${{words[CURRENT]}} prev=${{words[CURRENT-1]}}
    if [[ -z $rest ]]; then
        case $prev in
{chr(10).join(value_cases)}
        esac
        if [[ $cur == -* ]]; then
            case $qpath in
{chr(10).join(option_cases)}
            esac
            compadd -l -d descs -- $cands
            return
        fi
    fi
    case $qpath in
{chr(10).join(positional_cases)}
        *) return;;
    esac
    compadd -l -d descs -- $cands
}}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _queuectl "$@"
else
    compdef _queuectl queuectl
fi
"""


# ---------------------------------------------------------------- fish

def _fish_values(kind: str, cmds: list[Command]) -> str:
    """`complete` arguments that offer the values of this kind."""
    words = _literal(kind, cmds)
    if words is not None:
        return f"-a {_sh(' '.join(words))}"
    return {"ids": "-a '(__queuectl_ids)'",
            "files": "-a '(__fish_complete_path (commandline -ct))'",
            "dirs": "-a '(__fish_complete_directories)'",
            "command": "-a '(__fish_complete_command)'"}.get(kind, "")


def fish(cmds: list[Command]) -> str:
    valopts = " ".join(_value_options(cmds))
    paths = " ".join(c.path for c in cmds[1:])
    lines = []
    for c in cmds:
        at = f"-n '__queuectl_at {c.path}'"
        for s in c.subs:
            lines.append(f"complete -c queuectl {at} -a {s.name} -d {_sh(s.help)}")
        for o in c.options:
            flags = " ".join(f"-l {n[2:]}" if n.startswith("--") else f"-s {n[1:]}"
                             for n in o.names)
            value = "" if o.value is None else " -r" + (
                f" {_fish_values(o.value, cmds)}" if o.value else "")
            lines.append(f"complete -c queuectl {at} {flags}{value} -d {_sh(o.help)}")
        if c.positional and not c.subs:
            first = "" if c.many else "; and __queuectl_first"
            lines.append(f"complete -c queuectl -n '__queuectl_at {c.path}{first}' "
                         f"{_fish_values(c.positional, cmds)}")
    body = "\n".join(lines)
    return f"""# fish completion for queuectl (generated by `queuectl completion fish`).
# Install: queuectl completion fish > ~/.config/fish/completions/queuectl.fish

# The command path of the command line so far (q, q/worker, q/worker/start...),
# then how many positional arguments follow it.
function __queuectl_path
    set -l qpath q
    set -l npos 0
    set -l skip 0
    set -l rest 0
    for w in (commandline -opc)[2..-1]
        if test $rest = 1
            set npos (math $npos + 1)
            continue
        end
        if test $skip = 1
            set skip 0
            continue
        end
        switch $w
            case --
                test $qpath = q/add; and set rest 1
                continue
            case {valopts}
                set skip 1
                continue
            case '-*'
                continue
        end
        if contains -- $qpath/$w {paths}
            set qpath $qpath/$w
        else
            set npos (math $npos + 1)
        end
    end
    echo $qpath
    echo $npos
end

function __queuectl_at
    test (__queuectl_path)[1] = $argv[1]
end

function __queuectl_first
    test (__queuectl_path)[2] = 0
end

function __queuectl_ids
    set -l tokens (commandline -opc)
    set -l db
    set -l i (contains -i -- --db $tokens)
    and set db --db $tokens[(math $i + 1)]
    command queuectl $db {IDS_COMMAND} 2>/dev/null
end

complete -c queuectl -f
{body}
"""
