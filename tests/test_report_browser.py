"""report.html in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

Playwright's own browser download is not used (it cannot run here); the system Chromium is launched by
path. Without Chromium or Playwright every test here is skipped, with the reason, never passed.
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from segdice import evaluate
from segdice.io import save_mask

WIDTHS = (1280, 400)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install playwright; the 'test' extra)")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    manager = sync_playwright().start()
    try:
        chromium = manager.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        manager.stop()


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Two real reports: 3 labels on NIfTI volumes, and 200 labels on 2-D maps."""
    root = tmp_path_factory.mktemp("browser")
    # 3 labels, 4 cases of 3-D NIfTI: label 3 is missed in case "c", so its Dice spreads.
    small_gt, small_pred = root / "small" / "gt", root / "small" / "pred"
    small_gt.mkdir(parents=True)
    small_pred.mkdir(parents=True)
    gt = np.zeros((20, 20, 8), np.uint8)
    gt[2:8, 2:8, 2:6] = 1
    gt[10:16, 3:9, 2:6] = 2
    gt[5:9, 12:17, 3:5] = 3
    for k, case in enumerate("abcd"):
        pred = gt.copy()
        pred[2 : 2 + k, 2:8, 2:6] = 0
        if case == "c":
            pred[pred == 3] = 0
        save_mask(small_gt / f"{case}.nii.gz", gt, (0.8, 0.8, 2.0))
        save_mask(small_pred / f"{case}.nii.gz", pred, (0.8, 0.8, 2.0))
    small = evaluate(
        small_pred, small_gt, out=root / "small" / "out", workers=1,
        label_names={"liver": 1, "$\\frac$ <i>x</i>": 2, "_tumour": 3},
    )  # fmt: skip
    # 200 labels in a 2-D map of 3x3 blocks; each case erases a different share of each label.
    many_gt, many_pred = root / "many" / "gt", root / "many" / "pred"
    many_gt.mkdir(parents=True)
    many_pred.mkdir(parents=True)
    gt = np.zeros((60, 80), np.uint16)
    for k in range(200):
        r, c = divmod(k, 20)
        gt[1 + 4 * r : 4 + 4 * r, 1 + 4 * c : 4 + 4 * c] = k + 1
    for case in range(3):
        rng = np.random.default_rng(case)
        pred = gt.copy()
        pred[rng.random(gt.shape) < 0.15 * (case + 1)] = 0
        np.save(many_gt / f"case{case}.npy", gt)
        np.save(many_pred / f"case{case}.npy", pred)
    names = {f"area_{k:03d}": k for k in range(1, 201)}
    many = evaluate(
        many_pred, many_gt, out=root / "many" / "out", workers=1, metrics="dice,hd95", label_names=names
    )
    # Objects (--instances): one item from instance label maps, and 30 labels of small and large objects.
    inst_gt, inst_pred = root / "inst" / "gt", root / "inst" / "pred"
    inst_gt.mkdir(parents=True)
    inst_pred.mkdir(parents=True)
    nuclei = np.zeros((40, 40), np.uint16)
    for k in range(16):
        r, c = divmod(k, 4)
        nuclei[2 + 10 * r : 4 + 10 * r + r, 2 + 10 * c : 4 + 10 * c + 2 * c] = k + 1
    for case in range(2):
        guess = nuclei.copy()
        guess[guess % (case + 3) == 0] = 0
        np.save(inst_gt / f"img{case}.npy", nuclei)
        np.save(inst_pred / f"img{case}.npy", guess)
    objects_one = evaluate(
        inst_pred, inst_gt, out=root / "inst" / "out", workers=1, metrics="dice,iou", instances="labels"
    )
    obj_gt, obj_pred = root / "obj" / "gt", root / "obj" / "pred"
    obj_gt.mkdir(parents=True)
    obj_pred.mkdir(parents=True)
    gt = np.zeros((64, 96), np.uint8)
    for k in range(30):
        r, c = divmod(k, 10)
        gt[2 + 20 * r : 4 + 20 * r, 1 + 9 * c : 3 + 9 * c] = k + 1  # 4 pixels
        gt[8 + 20 * r : 18 + 20 * r, 1 + 9 * c : 8 + 9 * c] = k + 1  # 70 pixels
    for case in range(2):
        pred = gt.copy()
        pred[2 + 20 * case : 4 + 20 * case] = 0  # one row of small objects missed per case
        np.save(obj_gt / f"c{case}.npy", gt)
        np.save(obj_pred / f"c{case}.npy", pred)
    objects_many = evaluate(
        obj_pred, obj_gt, out=root / "obj" / "out", workers=1, metrics="dice,hd95,gds", instances="components",
        label_names={f"<i>lesion</i> {k}": k for k in range(1, 31)},
    )  # fmt: skip
    return {"small": small, "many": many, "objects_one": objects_one, "objects_many": objects_many}


def _open(browser, path, width):
    """Open ``path`` at ``width`` px; every request and console message is recorded, and any request
    that is not the file itself or a ``data:`` URL is recorded and aborted."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    record = {"requests": [], "console": [], "blocked": []}
    page.on("request", lambda request: record["requests"].append(request.url))
    page.on("console", lambda message: record["console"].append((message.type, message.text)))
    page.on("pageerror", lambda error: record["console"].append(("pageerror", str(error))))

    def gate(route):
        url = route.request.url
        if url.startswith("data:") or url == path.as_uri():
            route.continue_()
        else:
            record["blocked"].append(url)
            route.abort()

    context.route("**/*", gate)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return context, page, record


@pytest.mark.parametrize("which", ["small", "many", "objects_one", "objects_many"])
@pytest.mark.parametrize("width", WIDTHS)
def test_no_overflow_no_network_no_console_errors(browser, reports, which, width):
    path = reports[which].files["report"]
    context, page, record = _open(browser, path, width)
    try:
        scroll, client = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert scroll <= client, f"{which} at {width} px: the page is {scroll} px wide in {client} px"
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.complete && i.naturalWidth > 0,"
            " i.getBoundingClientRect().right])"
        )
        assert images and all(loaded for loaded, _ in images)
        assert all(right <= client + 0.5 for _, right in images)  # no picture sticks out
        assert record["blocked"] == []
        assert all(url.startswith("data:") or url == path.as_uri() for url in record["requests"])
        assert [m for m in record["console"] if m[0] in ("error", "pageerror", "warning")] == []
    finally:
        context.close()


def _column(page, table_id, header):
    """The texts of a column of a table's visible body rows, found by its header text."""
    return page.evaluate(
        """([id, header]) => {
            const table = document.getElementById(id);
            const heads = Array.from(table.tHead.rows[0].cells).map(c => c.textContent.trim());
            const k = heads.indexOf(header);
            return Array.from(table.tBodies[0].rows).filter(r => !r.hidden)
                .map(r => r.cells[k].textContent.trim());
        }""",
        [table_id, header],
    )


def _header(page, table_id, text):
    return page.locator(f"#{table_id} thead tr").first.locator("th", has_text=text).first


def test_sorting_orders_numbers_and_keeps_missing_values_last(browser, reports):
    result = reports["small"]
    context, page, record = _open(browser, result.files["report"], 1280)
    try:
        expected = sorted(r["dice"] for r in result.per_case if not math.isnan(r["dice"]))
        _header(page, "cases-table", "dice").click()
        assert _header(page, "cases-table", "dice").get_attribute("aria-sort") == "ascending"
        shown = _column(page, "cases-table", "dice")
        numbers = [float(v) for v in shown if v != "–"]
        assert numbers == pytest.approx([float(f"{v:.4g}") for v in expected])
        assert shown[len(numbers) :] == ["–"] * (len(shown) - len(numbers))  # NaN last
        _header(page, "cases-table", "dice").click()
        assert _header(page, "cases-table", "dice").get_attribute("aria-sort") == "descending"
        descending = [float(v) for v in _column(page, "cases-table", "dice") if v != "–"]
        assert descending == sorted(descending, reverse=True) == numbers[::-1]
        # text columns sort as text; the label table's mean row stays on top, above the sorted rows
        _header(page, "labels-table", "label / region").click()
        names = _column(page, "labels-table", "label / region")
        assert names == sorted(names, key=str.lower)
        assert page.locator("#labels-table thead tr.mean th").inner_text() == "mean over labels"
        assert [m for m in record["console"] if m[0] in ("error", "pageerror")] == []
    finally:
        context.close()


def test_filtering_shows_only_matching_rows(browser, reports):
    result = reports["many"]
    context, page, _ = _open(browser, result.files["report"], 400)
    try:
        page.fill('input[data-filter="cases-table"]', "case1")
        cases = _column(page, "cases-table", "case")
        assert cases and set(cases) == {"case1"}
        assert len(cases) == sum(1 for r in result.per_case if r["case"] == "case1")
        assert page.inner_text('[data-count="cases-table"]') == f"{len(cases)} shown"
        page.fill('input[data-filter="labels-table"]', "area_199")
        assert _column(page, "labels-table", "label / region") == ["area_199"]
        page.fill('input[data-filter="cases-table"]', "")
        assert len(_column(page, "cases-table", "case")) == len(result.per_case)
    finally:
        context.close()


@pytest.mark.parametrize("which", ["objects_one", "objects_many"])
def test_object_tables_show_counts_and_sort(browser, reports, which):
    result = reports[which]
    context, page, record = _open(browser, result.files["report"], 400)
    try:
        assert page.locator("#detection-table").is_visible() and page.locator("#size-table").is_visible()
        detection = result.summary["detection"]
        names = [item["name"] for item in result.summary["items"]]
        assert _column(page, "detection-table", "label / region") == names  # escaped text, as given
        _header(page, "detection-table", "FN").click()
        missed = _column(page, "detection-table", "FN")
        assert missed == [str(v) for v in sorted(detection[n]["objects_fn"] for n in names)]
        shown = [None if v == "–" else int(v) for v in _column(page, "cases-table", "TP objects")]
        assert shown == [r["objects_tp"] for r in result.per_case]  # None on gds's "all" rows
        figure = page.locator('img[alt="share of ground-truth objects found per object size"]')
        assert figure.count() == 1
        assert [m for m in record["console"] if m[0] in ("error", "pageerror")] == []
    finally:
        context.close()


@pytest.fixture(scope="module")
def comparison_report(tmp_path_factory):
    """comparison.html of three real runs (2-D PNG, 2 labels with long names, dice and hd95) on one truth."""
    from segdice import compare

    root = tmp_path_factory.mktemp("comparison")
    names = {"Precentral_Gyrus_Left_Hemisphere_Long_Name": 1, "Precentral_Gyrus_Right_Hemisphere": 2}
    shifts = {"exact": 0, "shifted": 1, "far": 3}
    for folder in ("gt", *shifts):
        (root / folder).mkdir()
    for k in range(8):
        truth = np.zeros((24, 24), np.uint8)
        truth[3 : 9 + k % 3, 2:10] = 1
        truth[12:20, 12 : 18 + k % 2] = 2
        save_mask(root / "gt" / f"c{k}.png", truth)
        for run, shift in shifts.items():
            save_mask(root / run / f"c{k}.png", np.roll(truth, shift + (k % 2) * (shift > 0), axis=1))
    runs = []
    for run in shifts:
        out = root / f"run_{run}"
        evaluate(root / run, root / "gt", out=out, metrics="dice,hd95", workers=1, label_names=names)
        runs.append(out)
    result = compare(runs, out=root / "cmp", resamples=200)
    return result, root / "cmp" / "comparison.html"


@pytest.mark.parametrize("width", WIDTHS)
def test_comparison_report_no_overflow_no_network_no_console_errors(browser, comparison_report, width):
    _, path = comparison_report
    context, page, record = _open(browser, path, width)
    try:
        scroll, client = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert scroll <= client, f"comparison.html at {width} px: the page is {scroll} px wide in {client} px"
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.complete && i.naturalWidth > 0,"
            " i.getBoundingClientRect().right])"
        )
        assert all(loaded for loaded, _ in images)
        assert all(right <= client + 0.5 for _, right in images)
        assert record["blocked"] == []
        assert all(url.startswith("data:") or url == path.as_uri() for url in record["requests"])
        assert [m for m in record["console"] if m[0] in ("error", "pageerror", "warning")] == []
    finally:
        context.close()


def test_comparison_table_sorts_numbers_with_dashes_last_and_text_alphabetically(browser, comparison_report):
    result, path = comparison_report
    context, page, record = _open(browser, path, 1280)
    try:
        n_rows = len(result.comparisons)
        assert n_rows == 2 * 2 * 3  # labels x metrics x pairs of runs
        _header(page, "comparisons", "mean diff").click()
        shown = _column(page, "comparisons", "mean diff")
        numbers = [float(v) for v in shown if v != "–"]
        expected = sorted(r["mean_diff"] for r in result.comparisons if not math.isnan(r["mean_diff"]))
        assert numbers == pytest.approx([float(f"{v:.4g}") for v in expected], rel=1e-3)
        assert shown[len(numbers) :] == ["–"] * (len(shown) - len(numbers))
        _header(page, "comparisons", "mean diff").click()
        again = [float(v) for v in _column(page, "comparisons", "mean diff") if v != "–"]
        assert again == numbers[::-1]
        _header(page, "comparisons", "run b").click()
        runs_b = _column(page, "comparisons", "run b")
        assert runs_b == sorted(runs_b) and len(set(runs_b)) == 2
        assert len(runs_b) == n_rows
        assert [m for m in record["console"] if m[0] in ("error", "pageerror")] == []
    finally:
        context.close()
