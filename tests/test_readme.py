"""The README's Quick start: exactly the two commands CI and newcomers rely on."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _block_after(marker: str, text: str) -> str:
    match = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```", text, re.DOTALL)
    assert match, f"README.md has no ```bash block after <!-- {marker} -->"
    return match.group(1).strip()


def test_quick_start_has_one_main_and_one_test_command():
    readme = (ROOT / "README.md").read_text()
    main_command = _block_after("main-command", readme)
    test_command = _block_after("test-command", readme)
    assert len(main_command.splitlines()) == 1
    assert len(test_command.splitlines()) == 1
    assert "segdice" in main_command.split("&&")[-1]
    assert "pytest" in test_command


def test_ci_script_reads_the_readme_test_command():
    # .ci/run extracts the command with awk; run that same extraction and compare with the README.
    script = (ROOT / ".ci" / "run").read_text()
    awk_program = re.search(r"awk '([^']+)' README.md", script).group(1)
    extracted = subprocess.run(
        ["awk", awk_program, "README.md"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert extracted == _block_after("test-command", (ROOT / "README.md").read_text())


def test_readme_python_examples_print_what_their_comments_say():
    import contextlib
    import io

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    assert blocks, "README.md has no python examples"
    code = "\n".join(blocks)
    expected = [c.strip() for c in re.findall(r"^\s*print\(.*\)\s+#(.*)$", code, re.MULTILINE)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    printed = out.getvalue().strip().splitlines()
    assert len(printed) == len(expected)
    for line, comment in zip(printed, expected, strict=True):
        # A comment may add a unit after the value, e.g. "1.0 (mm)".
        assert comment.startswith(line.strip()), (line, comment)
