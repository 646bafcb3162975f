"""Every code example in the documentation runs here, page by page, in the order a reader meets it.

How a page's fenced blocks are run:

- ``python`` blocks run in one namespace per page (so a later block can use an earlier one's names);
  a block whose first line starts with ``>>>`` is a doctest, so the numbers it prints are checked.
- ``bash`` / ``console`` blocks may only contain ``segdice ...`` commands; each runs through the Typer
  app in the page's working directory and must exit 0 (or the code named by an ``expect-exit`` marker).
- Every page runs in a fresh temporary directory, so files written by one example never leak into
  another page.

A block opts out only with a marker comment right above it that gives a reason::

    <!-- docs-test: skip (installs packages into the environment) -->

Other markers: ``<!-- docs-test: expect-exit 2 -->`` for a command that must fail cleanly, and
``<!-- docs-test: stdout -->`` above a ``text`` block that shows what the shell block before it prints:
the last command's stdout (not a terminal, as in a pipe) must be that text, line for line.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)[^\n]*$")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")
PYTHON = {"python", "py", "pycon"}
SHELL = {"bash", "sh", "shell", "console"}


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None


def extract_blocks(text: str, page: str) -> list[Block]:
    """Fenced code blocks of a Markdown page, with the docs-test marker (if any) right above each."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, lang = match["indent"], match["fence"], match["lang"].lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1  # the closing fence
        marker = None
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0 and (m := MARKER.match(lines[j])):
            marker = m["body"]
        blocks.append(Block(page, start + 1, lang, "\n".join(body) + "\n", marker))
    return blocks


def doc_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def page_id(path: Path) -> str:
    return path.relative_to(DOCS).as_posix()


def runnable(block: Block) -> bool:
    return block.lang in PYTHON | SHELL


def skip_reason(marker: str | None) -> str | None:
    if marker is None:
        return None
    m = re.fullmatch(r"skip\s*\((?P<reason>.*)\)", marker)
    return m["reason"].strip() if m else None


def expected_exit(marker: str | None) -> int:
    if marker and (m := re.fullmatch(r"expect-exit\s+(\d+)", marker)):
        return int(m[1])
    return 0


def shell_commands(code: str, lang: str) -> list[str]:
    """The commands of a shell block: ``$ ``-prefixed lines of a console block, all lines of a bash one."""
    commands: list[str] = []
    pending = ""
    for raw in code.splitlines():
        line = raw.rstrip()
        if lang == "console" and not pending:
            if not line.startswith("$ "):
                continue  # console output, shown to the reader, not run
            line = line[2:]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        commands.append(pending + line)
        pending = ""
    return commands


def run_python(block: Block, namespace: dict) -> None:
    where = f"{block.page}:{block.line}"
    if block.code.lstrip().startswith(">>>"):
        parser = doctest.DocTestParser()
        test = parser.get_doctest(block.code, namespace, where, block.page, block.line)
        runner = doctest.DocTestRunner(
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
        )
        failures: list[str] = []

        def report_failure(out, test, example, got):
            failures.append(
                f"{where} (block line {example.lineno + 1}): {example.source.strip()}\n"
                f"expected:\n{example.want}got:\n{got}"
            )

        def report_exception(out, test, example, exc_info):
            failures.append(
                f"{where} (block line {example.lineno + 1}): {example.source.strip()}\n"
                f"raised {exc_info[0].__name__}: {exc_info[1]}"
            )

        runner.report_failure = report_failure
        runner.report_unexpected_exception = report_exception
        runner.run(test, out=lambda _s: None, clear_globs=False)
        # doctest runs in a copy of the namespace: carry the names it defined on to the next block.
        namespace.update(test.globs)
        assert not failures, "\n\n".join(failures)
    else:
        exec(compile(block.code, where, "exec"), namespace)


def run_shell(block: Block) -> str:
    """Run a shell block's commands; return the last one's stdout."""
    from typer.testing import CliRunner

    from segdice.cli import app

    commands = shell_commands(block.code, block.lang)
    assert commands, f"{block.page}:{block.line}: a shell block without commands needs a skip marker"
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "segdice", (
            f"{block.page}:{block.line}: only `segdice ...` commands can run in the docs tests; "
            f"mark the block `<!-- docs-test: skip (reason) -->` if it must show `{command}`"
        )
        result = CliRunner().invoke(app, argv[1:])
        want = expected_exit(block.marker)
        assert result.exit_code == want, (
            f"{block.page}:{block.line}: `{command}` exited {result.exit_code}, expected {want}\n"
            f"{result.output}\n{result.exception!r}"
        )
    return result.stdout


ALL_BLOCKS = [b for page in doc_pages() for b in extract_blocks(page.read_text(), page_id(page))]


@pytest.fixture
def smp_losses_importable(monkeypatch):
    """Make ``import segmentation_models_pytorch.losses`` work where only the package's own deps are missing.

    smp is installed without timm/torchvision (they would pull another torch), so importing the package
    fails, but its loss files need only torch. A bare parent package lets the docs' examples import the
    real loss code exactly as a user would write it.
    """
    import importlib.util

    try:
        import segmentation_models_pytorch  # noqa: F401
    except ImportError:
        spec = importlib.util.find_spec("segmentation_models_pytorch")
        if spec is None or not spec.submodule_search_locations:
            yield
            return
        parent = types.ModuleType("segmentation_models_pytorch")
        parent.__path__ = list(spec.submodule_search_locations)
        monkeypatch.setitem(sys.modules, "segmentation_models_pytorch", parent)
        yield
        for name in [n for n in sys.modules if n.startswith("segmentation_models_pytorch.")]:
            del sys.modules[name]
        return
    yield


PAGES_WITH_EXAMPLES = sorted({b.page for b in ALL_BLOCKS if runnable(b)})


@pytest.mark.parametrize("page", [DOCS / p for p in PAGES_WITH_EXAMPLES], ids=page_id)
def test_page_examples_run(page: Path, tmp_path, monkeypatch, smp_losses_importable):
    blocks = [b for b in extract_blocks(page.read_text(), page_id(page)) if runnable(b)]
    missing = sorted(
        {
            name
            for b in blocks
            if b.lang in PYTHON and not skip_reason(b.marker)
            for name in re.findall(r"^\s*(?:>>>\s*)?(?:from|import)\s+(\w+)", b.code, re.MULTILINE)
            if name not in sys.modules and importlib.util.find_spec(name) is None
        }
    )
    if missing:
        # migration pages compare with the peer libraries; without them there is nothing to compare to
        pytest.skip(f"{page_id(page)} needs {', '.join(missing)} (not installed)")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    stdout = None  # of the last shell block run
    for block in extract_blocks(page.read_text(), page_id(page)):
        if skip_reason(block.marker):
            continue
        if block.lang in PYTHON:
            run_python(block, namespace)
        elif block.lang in SHELL:
            stdout = run_shell(block)
        elif block.marker == "stdout":
            assert stdout is not None, (
                f"{block.page}:{block.line}: a stdout block needs a shell block before it"
            )
            assert stdout.splitlines() == block.code.splitlines(), (
                f"{block.page}:{block.line}: the command printed\n{stdout}\nbut the page shows\n{block.code}"
            )


def test_every_marker_is_known_and_every_skip_has_a_reason():
    for block in ALL_BLOCKS:
        if block.marker is None:
            continue
        where = f"{block.page}:{block.line}"
        if block.marker.startswith("skip"):
            reason = skip_reason(block.marker)
            assert reason, f"{where}: a skip marker needs a reason: <!-- docs-test: skip (why) -->"
        elif block.marker == "stdout":
            assert block.lang == "text", f"{where}: a stdout marker belongs above a ```text block"
        else:
            assert re.fullmatch(r"expect-exit\s+\d+", block.marker), (
                f"{where}: unknown marker {block.marker!r}"
            )


def test_every_code_block_declares_its_language():
    # An unlabelled fence would escape both the highlighter and this test.
    for block in ALL_BLOCKS:
        assert block.lang, (
            f"{block.page}:{block.line}: give the fenced block a language (python, bash, text, ...)"
        )


def test_most_examples_run():
    runnable_blocks = [b for b in ALL_BLOCKS if runnable(b)]
    skipped = [b for b in runnable_blocks if skip_reason(b.marker)]
    assert len(runnable_blocks) >= 20
    # Skips are for installs and long jobs, not a way around a failing example.
    assert len(skipped) <= len(runnable_blocks) // 4, [f"{b.page}:{b.line}" for b in skipped]


# --- the extractor itself: it must find what a reader sees, or the tests above prove nothing ---------


def test_extractor_finds_blocks_markers_and_doctests():
    text = (
        "# T\n\n```python\nx = 1\n```\n\n<!-- docs-test: skip (needs network) -->\n\n"
        "```bash\npip install foo\n```\n\n```text\nout\n```\n\n    ```pycon\n    >>> 1 + 1\n    2\n    ```\n"
    )
    blocks = extract_blocks(text, "t.md")
    assert [b.lang for b in blocks] == ["python", "bash", "text", "pycon"]
    assert [b.line for b in blocks] == [3, 9, 13, 17]
    assert blocks[0].marker is None and skip_reason(blocks[1].marker) == "needs network"
    assert blocks[3].code == ">>> 1 + 1\n2\n"


def test_doctest_blocks_fail_on_a_wrong_number():
    bad = Block("t.md", 1, "python", ">>> 1 + 1\n3\n", None)
    with pytest.raises(AssertionError, match="expected"):
        run_python(bad, {})


def test_python_blocks_share_a_namespace_in_page_order():
    ns: dict = {}
    run_python(Block("t.md", 1, "python", "x = 40\n", None), ns)
    run_python(Block("t.md", 5, "python", ">>> y = x + 2\n>>> y\n42\n", None), ns)
    run_python(Block("t.md", 9, "python", "assert y == 42\n", None), ns)


def test_shell_commands_parse_continuations_and_console_prompts():
    commands = shell_commands("segdice a \\\n  --b c\n# note\nsegdice d\n", "bash")
    assert [shlex.split(c) for c in commands] == [["segdice", "a", "--b", "c"], ["segdice", "d"]]
    assert shell_commands("$ segdice info\nsome output\n", "console") == ["segdice info"]


def test_figure_script_is_valid_python():
    # The script that draws the figures must at least parse and answer --help without drawing anything.
    script = DOCS / "scripts" / "make_figures.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr


def test_site_hook_strips_sphinx_roles_from_rendered_docstrings():
    sys.path.insert(0, str(DOCS / "scripts"))
    try:
        import mkdocs_hooks
    finally:
        sys.path.pop(0)
    html = ":func:<code>dice_loss</code>, :class:<code>~segdice.SegDiceError</code>, :math:<code>x</code>"
    assert (
        mkdocs_hooks.strip_sphinx_roles(html)
        == "<code>dice_loss</code>, <code>SegDiceError</code>, <code>x</code>"
    )
    assert mkdocs_hooks.strip_sphinx_roles("a <code>plain</code> b") == "a <code>plain</code> b"


def test_demo_table_matches_the_committed_demo_results():
    # The table in "Choosing a loss" is copied from a `segdice demo` run; the run's results.json is
    # committed beside the figures, and every number of the table must be that run's, rounded.
    results = json.loads((DOCS / "assets" / "demo-results.json").read_text())
    text = (DOCS / "guide" / "choosing-a-loss.md").read_text()
    table = text.split("<!-- demo-table:", 1)[1].split("\n\n", 2)[1]
    rows = [line.strip("|").split("|") for line in table.splitlines()[2:]]
    assert len(rows) == len(results["methods"]) == 4
    for cells, method in zip(rows, results["methods"].values(), strict=True):
        m = method["metrics"]
        expected = [
            f"{m['accuracy']:.2%}",
            f"{m['dice_per_image']:.3f}",
            f"{m['dice_global']:.3f}",
            f"{m['iou_global']:.3f}",
            f"{m['hd95']:.1f}",
            f"{m['sensitivity']:.3f}",
            f"{m['lesions_found']:.0%}",
        ]
        assert [c.strip() for c in cells[1:]] == expected, cells[0]


def test_every_page_is_in_the_navigation():
    # A page outside `nav` still builds, but no reader finds it: every page must be listed.
    config = (ROOT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w/.-]+\.md)\s*$", config, re.MULTILINE))
    pages = {page_id(p) for p in doc_pages() if not page_id(p).startswith("scripts/")}
    assert pages - listed == set(), "add these pages to `nav` in mkdocs.yml"
    assert listed - pages == set(), "these `nav` entries have no page"


def test_every_evaluate_option_is_documented():
    # "Evaluating a folder" promises every option of `segdice evaluate`; a new option must be added there.
    import typer.main

    from segdice.cli import app

    command = typer.main.get_command(app).commands["evaluate"]
    text = (DOCS / "guide" / "evaluating-a-folder.md").read_text()
    options = [opt for param in command.params for opt in param.opts if opt.startswith("--")]
    assert options, "the evaluate command has no options?"
    missing = [opt for opt in options if f"`{opt}" not in text and opt != "--help"]
    assert not missing, f"document these options in docs/guide/evaluating-a-folder.md: {missing}"


def test_getting_started_shows_the_readme_commands():
    # The two commands of the README's quick start, verbatim, so the two pages cannot drift apart.
    readme = (ROOT / "README.md").read_text()
    page = (DOCS / "getting-started.md").read_text()
    for marker in ("<!-- main-command -->", "<!-- test-command -->"):
        block = readme.split(marker, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0].strip()
        assert f"```bash\n{block}\n```" in page, (
            f"docs/getting-started.md must show the README command {block!r}"
        )
