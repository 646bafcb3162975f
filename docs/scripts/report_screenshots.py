"""Regenerate the report screenshots of docs/guide/evaluating-a-folder.md (3 and 200 labels, 1280 and 400 px).

The data are the synthetic NIfTI pairs of ``benchmarks/report_scale.py`` (boxes on a grid, perturbed per
case); each report is written by ``segdice.evaluate`` and photographed in headless Chromium (Debian's
``chromium``, driven by Playwright with ``executable_path``; Playwright's own browser download is not
used). The shots show the top of the page at each width, and for 200 labels at 1280 px also the
distributions.

Usage: ``python docs/scripts/report_screenshots.py [--cases 12] [--out docs/assets]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from report_scale import make_dataset  # noqa: E402  (benchmarks/ is not a package)

SIZES = {1280: 900, 400: 860}  # viewport width: height of the shot


def _reports(root: Path, cases: int) -> dict[int, Path]:
    """Evaluate both data sets; relative paths (run from ``root``) keep temporary names off the shots."""
    from segdice import evaluate

    os.chdir(root)
    reports = {}
    for n_labels in (3, 200):
        pred, gt = make_dataset(Path(f"labels{n_labels}"), n_labels, cases)
        names = {"liver": 1, "spleen": 2, "left kidney": 3} if n_labels == 3 else None
        result = evaluate(
            pred, gt, out=Path(f"labels{n_labels}") / "out", workers=2, label_names=names,
            metrics="dice,iou,precision,recall,hd95,assd,nsd",
        )  # fmt: skip
        reports[n_labels] = root / result.files["report"]
    return reports


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "assets")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("no chromium on PATH (Debian: apt-get install chromium)")
    args.out = args.out.resolve()
    here = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        reports = _reports(Path(tmp), args.cases)
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            for n_labels, path in reports.items():
                for width, height in SIZES.items():
                    page = browser.new_page(viewport={"width": width, "height": height})
                    page.goto(path.as_uri())
                    shot = args.out / f"report-{n_labels}-labels-{width}px.png"
                    page.screenshot(path=str(shot))
                    print(f"wrote {shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot}")
                    if width == 1280 and n_labels == 200:
                        page.evaluate("document.getElementById('plots').scrollIntoView()")
                        shot = args.out / f"report-{n_labels}-labels-{width}px-plots.png"
                        page.screenshot(path=str(shot))
                        print(f"wrote {shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot}")
                    page.close()
        finally:
            browser.close()
            os.chdir(here)


if __name__ == "__main__":
    main()
