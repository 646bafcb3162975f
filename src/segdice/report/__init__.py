"""Reports of an evaluation: per-case CSV, summary JSON, and a self-contained HTML page with plots.

The report receives plain data (rows and the summary dict, and for pictures a :data:`CaseReader` that
returns each case's scored label maps as a :class:`CaseView`); it never imports the evaluator.
"""

from segdice.report.case_view import CaseReader, CaseView
from segdice.report.tables import (
    CASE_COLUMNS,
    CaseCSVWriter,
    read_case_csv,
    to_json_safe,
    write_case_csv,
    write_summary_json,
)

__all__ = [
    "CASE_COLUMNS",
    "CaseCSVWriter",
    "CaseReader",
    "CaseView",
    "read_case_csv",
    "to_json_safe",
    "write_case_csv",
    "write_summary_json",
]
