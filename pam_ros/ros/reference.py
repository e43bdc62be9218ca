"""The README's parameter and launch-argument tables, generated from the tables in the code.

    python -m pam_ros.ros.reference

prints both tables as Markdown; test/test_readme.py checks that the README carries them
verbatim, so the documentation cannot drift from what the node declares.
"""

from __future__ import annotations

from pam_ros.ros.launch_description import LAUNCH_ARGUMENTS
from pam_ros.ros.parameters import PARAMETER_SPECS


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def yaml_value(value) -> str:
    """A default as it is written in a parameters YAML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(yaml_value(v) for v in value) + "]"
    return str(value)


def _range(spec) -> str:
    if spec.choices:
        return ", ".join(f"`{c}`" for c in spec.choices)
    if spec.minimum is not None or spec.maximum is not None:
        return f"{spec.minimum} … {spec.maximum}"
    return ""


def parameter_table() -> str:
    lines = [
        "| parameter | default | range / choices | run-time | description |",
        "|---|---|---|---|---|",
    ]
    for spec in PARAMETER_SPECS:
        runtime = "no" if spec.read_only else "yes"
        lines.append(
            f"| `{spec.name}` | `{yaml_value(spec.default)}` | {_range(spec)} | {runtime} | "
            f"{_cell(spec.description)} |"
        )
    return "\n".join(lines)


def launch_argument_table() -> str:
    lines = ["| argument | default | choices | description |", "|---|---|---|---|"]
    for arg in LAUNCH_ARGUMENTS:
        choices = ", ".join(f"`{c}`" for c in arg.choices if c) if arg.choices else ""
        default = f"`{arg.default}`" if arg.default else '`""`'
        lines.append(f"| `{arg.name}` | {default} | {choices} | {_cell(arg.description)} |")
    return "\n".join(lines)


def main() -> None:
    print(parameter_table())
    print()
    print(launch_argument_table())


if __name__ == "__main__":
    main()
