"""Sizing reports: tables, plots, HTML and Markdown (`build_report`)."""
from .report import ReportOptions, build_report, recommend

__all__ = ["ReportOptions", "build_report", "recommend"]
