"""The worked example of docs/guide/evaluating-a-folder.md shows what the command really prints.

The page's first ``python`` block (it writes the files) and first ``bash`` block (the command) run in a
fresh folder, the command through ``python -m segdice`` with stdout a pipe as a reader's would be; its
stdout must be the page's ``text`` block, line for line, and its stderr the lines the page names.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "guide" / "evaluating-a-folder.md"


def _first_block(text: str, lang: str) -> str:
    match = re.search(rf"^```{lang}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)
    assert match, f"no ```{lang} block in the worked example"
    return match[1]


def test_worked_example_output_matches_the_page(tmp_path):
    page = PAGE.read_text(encoding="utf-8")
    section = page.split("## A worked example", 1)[1].split("\n## ", 1)[0]
    setup, command, shown = (_first_block(section, lang) for lang in ("python", "bash", "text"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", setup], cwd=tmp_path, env=env, check=True, timeout=300)
    args = shlex.split(command.replace("\\\n", " "))
    assert args[:2] == ["segdice", "evaluate"]
    proc = subprocess.run(
        [sys.executable, "-m", "segdice", *args[1:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == shown.splitlines()
    assert "wrote results/: per_case.csv, summary.json, report.html" in proc.stderr
    assert "scoring cases: 4/4" in section and "scoring cases: 4/4" in proc.stderr
