"""Shell completion, as documented in docs/getting-started.md: shtab's scripts from the parser."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import shtab

from aekit.cli import build_parser


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_scripts_offer_every_command_and_option(shell):
    script = shtab.complete(build_parser(), shell=shell)
    for command in ("train", "evaluate", "detect", "compress", "generate", "datasets"):
        assert command in script
    for option in ("--batch-size", "--iw-samples", "--interpolate", "--normal-class"):
        assert option in script


def test_the_bash_script_completes_commands_in_bash(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    (tmp_path / "aekit.bash").write_text(shtab.complete(build_parser(), shell="bash"))
    probe = f"""
source {tmp_path / "aekit.bash"}
COMP_WORDS=(aekit de); COMP_CWORD=1; COMP_LINE="aekit de"; COMP_POINT=${{#COMP_LINE}}
_shtab_aekit
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60)
    assert sorted(out.stdout.split()) == ["decompress", "denoise", "detect"], out.stderr
