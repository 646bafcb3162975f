"""Reports of an evaluation: per-case CSV, summary JSON, and a self-contained HTML page with plots.

The report receives plain data (rows and the summary dict); it never imports the evaluator.
"""

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
    "read_case_csv",
    "to_json_safe",
    "write_case_csv",
    "write_summary_json",
]
