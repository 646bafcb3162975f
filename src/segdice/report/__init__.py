"""Reports of an evaluation: per-case CSV, summary JSON, and a self-contained HTML page with plots."""

from segdice.report.tables import CaseCSVWriter, read_case_csv, write_case_csv, write_summary_json

__all__ = ["CaseCSVWriter", "read_case_csv", "write_case_csv", "write_summary_json"]
