"""Shell completion for ``resticm``, generated from the real argparse parser.

``resticm completion bash|zsh|fish`` prints a script. Nothing here is written by
hand per command: the script embeds a table read off the parser (every command
path, its subcommands, its options, which options take a value and their
choices), so a new command or flag is completed the day it is added.

Install (the docs say the same, docs/commands.md):

- bash: ``resticm completion bash > /etc/bash_completion.d/resticm``
- zsh: ``resticm completion zsh > "${fpath[1]}/_resticm"``
- fish: ``resticm completion fish > ~/.config/fish/completions/resticm.fish``
"""

from __future__ import annotations

import argparse
import shlex

import attrs

SHELLS = ("bash", "zsh", "fish")

#: Options whose value is a file or directory name: the shell completes paths there.
_PATH_DESTS = frozenset({"config", "file", "target", "dir"})


@attrs.frozen
class OptionInfo:
    flags: tuple[str, ...]
    help: str
    takes_value: bool
    choices: tuple[str, ...] = ()
    is_path: bool = False


@attrs.frozen
class CommandInfo:
    """One command path (``()`` is ``resticm`` itself, ``("config", "validate")``...)."""

    path: tuple[str, ...]
    help: str
    subcommands: tuple[tuple[str, str], ...]
    options: tuple[OptionInfo, ...]
    #: Choices of the first positional argument (``hooks run PHASE``), if any.
    positional_choices: tuple[str, ...] = ()


def _help_text(action: argparse.Action) -> str:
    text = action.help if isinstance(action.help, str) else ""
    return "" if text == argparse.SUPPRESS else text.replace("%%", "%")


def describe_parser(parser: argparse.ArgumentParser) -> list[CommandInfo]:
    """Every command path of *parser*, depth first, as plain data."""
    found: list[CommandInfo] = []

    def walk(current: argparse.ArgumentParser, path: tuple[str, ...], help_text: str) -> None:
        options: list[OptionInfo] = []
        subcommands: list[tuple[str, str]] = []
        children: list[tuple[str, argparse.ArgumentParser, str]] = []
        positional_choices: tuple[str, ...] = ()
        for action in current._actions:  # argparse has no public list of its actions
            if isinstance(action, argparse._SubParsersAction):
                helps = {c.dest: _help_text(c) for c in action._choices_actions}
                for name, child in action.choices.items():
                    subcommands.append((name, helps.get(name, "")))
                    children.append((name, child, helps.get(name, "")))
            elif action.option_strings:
                if action.help == argparse.SUPPRESS:
                    continue
                options.append(
                    OptionInfo(
                        flags=tuple(action.option_strings),
                        help=_help_text(action),
                        takes_value=action.nargs != 0,
                        choices=tuple(str(c) for c in action.choices or ()),
                        is_path=action.dest in _PATH_DESTS,
                    )
                )
            elif action.choices and not positional_choices:
                positional_choices = tuple(str(c) for c in action.choices)
        found.append(
            CommandInfo(
                path=path,
                help=help_text,
                subcommands=tuple(subcommands),
                options=tuple(options),
                positional_choices=positional_choices,
            )
        )
        for name, child, child_help in children:
            walk(child, (*path, name), child_help)

    walk(parser, (), parser.description or "")
    return found


def render(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script of *shell* for *parser*."""
    commands = describe_parser(parser)
    if shell == "bash":
        return _bash(commands)
    if shell == "zsh":
        return _zsh(commands)
    if shell == "fish":
        return _fish(commands)
    raise ValueError(f"unsupported shell {shell!r} (supported: {', '.join(SHELLS)})")


# -- bash (and zsh through bashcompinit) ------------------------------------------


def _key(path: tuple[str, ...]) -> str:
    # "/" joins a path: zsh's associative arrays do not take a quoted key with a space.
    return shlex.quote("/".join(path) or "_")


def _bash_table(commands: list[CommandInfo]) -> list[str]:
    lines = [
        "declare -A _resticm_subs _resticm_opts _resticm_valued _resticm_choices _resticm_pos",
        "_resticm_paths=' '",
    ]
    for info in commands:
        key = _key(info.path)
        words = [name for name, _ in info.subcommands]
        flags = [flag for option in info.options for flag in option.flags]
        valued = [flag for option in info.options if option.takes_value for flag in option.flags]
        lines.append(f"_resticm_subs[{key}]={shlex.quote(' '.join(words))}")
        lines.append(f"_resticm_opts[{key}]={shlex.quote(' '.join(flags))}")
        lines.append(f"_resticm_valued[{key}]={shlex.quote(' ' + ' '.join(valued) + ' ')}")
        lines.append(f"_resticm_pos[{key}]={shlex.quote(' '.join(info.positional_choices))}")
        for option in info.options:
            if option.choices or option.is_path:
                value = " ".join(option.choices) if option.choices else "@path"
                for flag in option.flags:
                    index = shlex.quote(f"{'/'.join(info.path) or '_'}|{flag}")
                    lines.append(f"_resticm_choices[{index}]={shlex.quote(value)}")
    return lines


_BASH_FUNCTION = r"""
_resticm() {
    # zsh (through bashcompinit): the same 0-based arrays and word splitting as bash.
    [[ -n "${ZSH_VERSION:-}" ]] && setopt localoptions ksharrays shwordsplit
    local cur prev path word i key
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    path=""
    # The command path so far: words naming a subcommand of the path before them;
    # an option that takes a value swallows the next word.
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        key="${path:-_}"
        if [[ "${_resticm_valued[$key]} ${_resticm_valued[_]}" == *" $word "* ]]; then
            ((i++))
            continue
        fi
        [[ "$key" == "run" ]] && return 0  # `resticm run ARGS...`: restic's own arguments
        if [[ " ${_resticm_subs[$key]} " == *" $word "* ]]; then
            path="${path:+$path/}$word"
        fi
    done
    key="${path:-_}"
    local choices="${_resticm_choices[$key|$prev]:-${_resticm_choices[_|$prev]}}"
    if [[ -n "$choices" ]]; then
        if [[ "$choices" == "@path" ]]; then
            COMPREPLY=($(compgen -f -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$choices" -- "$cur"))
        fi
        return 0
    fi
    if [[ " ${_resticm_valued[$key]} ${_resticm_valued[_]} " == *" $prev "* ]]; then
        COMPREPLY=()
        return 0
    fi
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "${_resticm_opts[$key]}" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "${_resticm_subs[$key]} ${_resticm_pos[$key]}" -- "$cur"))
    fi
    return 0
}
complete -F _resticm resticm
"""


def _bash(commands: list[CommandInfo]) -> str:
    head = "# bash completion for resticm (generated by `resticm completion bash`)"
    return "\n".join([head, *_bash_table(commands)]) + "\n" + _BASH_FUNCTION.lstrip("\n")


def _zsh(commands: list[CommandInfo]) -> str:
    # zsh runs bash completion functions through bashcompinit; one table, one logic.
    return (
        "#compdef resticm\n"
        "# zsh completion for resticm (generated by `resticm completion zsh`)\n"
        "autoload -U +X bashcompinit && bashcompinit\n"
        + "\n".join(_bash_table(commands))
        + "\n"
        + _BASH_FUNCTION.lstrip("\n")
    )


# -- fish ---------------------------------------------------------------------------


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_condition(info: CommandInfo) -> str:
    if not info.path:
        return "__fish_use_subcommand"
    # Seen the whole path, and no deeper subcommand of it yet.
    seen = " && ".join(f"__fish_seen_subcommand_from {name}" for name in info.path)
    deeper = [name for name, _ in info.subcommands]
    if deeper:
        seen += f" && not __fish_seen_subcommand_from {' '.join(deeper)}"
    return seen


def _fish(commands: list[CommandInfo]) -> str:
    lines = ["# fish completion for resticm (generated by `resticm completion fish`)"]
    lines.append("complete -c resticm -f")
    for info in commands:
        condition = _fish_quote(_fish_condition(info))
        for name, help_text in info.subcommands:
            lines.append(
                f"complete -c resticm -n {condition} -a {_fish_quote(name)} "
                f"-d {_fish_quote(help_text[:80])}"
            )
        for choice in info.positional_choices:
            lines.append(f"complete -c resticm -n {condition} -a {_fish_quote(choice)}")
        for option in info.options:
            spec = []
            for flag in option.flags:
                if flag.startswith("--"):
                    spec.append(f"-l {flag[2:]}")
                elif len(flag) == 2:
                    spec.append(f"-s {flag[1]}")
            if not spec:
                continue
            extra = ""
            if option.choices:
                extra = f" -x -a {_fish_quote(' '.join(option.choices))}"
            elif option.is_path:
                extra = " -r -F"
            elif option.takes_value:
                extra = " -x"
            lines.append(
                f"complete -c resticm -n {condition} {' '.join(spec)}{extra} "
                f"-d {_fish_quote(option.help[:80])}"
            )
    return "\n".join(lines) + "\n"
