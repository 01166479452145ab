"""Certify reports: a text table grouped by requirement, JSON, and JUnit XML."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

from webhook_kit.certify.model import REQUIREMENTS, Report

VERDICT_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}


def to_json(report: Report) -> str:
    return json.dumps(report.as_json(), indent=2)


def to_junit(report: Report) -> str:
    counts = report.counts()
    suite = ET.Element(
        "testsuite",
        name="webhook-kit certify",
        tests=str(len(report.checks)),
        failures=str(counts["fail"]),
        skipped=str(counts["skip"]),
        errors="0",
        time=f"{sum(c.duration_ms for c in report.checks) / 1000:.3f}",
    )
    ET.SubElement(ET.SubElement(suite, "properties"), "property", name="url", value=report.url)
    for check in report.checks:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"certify.{check.requirement}",
            name=check.id,
            time=f"{check.duration_ms / 1000:.3f}",
        )
        if check.verdict == "fail":
            ET.SubElement(
                case, "failure", message=check.detail[:200], type="fail"
            ).text = check.detail
        elif check.verdict == "skip":
            ET.SubElement(case, "skipped", message=check.detail)
        else:
            ET.SubElement(case, "system-out").text = f"{check.verdict}: {check.detail}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def verdict_line(report: Report) -> str:
    c = report.counts()
    return (
        f"{report.verdict.upper()}: {report.url} "
        f"({c['pass']} passed, {c['fail']} failed, {c['warn']} warnings, {c['skip']} skipped)"
    )


def to_text(report: Report, *, color: bool = False, width: int = 120) -> str:
    """A table per requirement, then one verdict line; rich renders it (colour on a terminal)."""
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=width)
    table = Table(title=f"webhook-kit certify {report.url}", show_lines=False, expand=True)
    table.add_column("requirement", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("detail", ratio=1)
    for requirement in REQUIREMENTS:
        checks = [c for c in report.checks if c.requirement == requirement]
        for n, check in enumerate(checks):
            style = VERDICT_STYLE[check.verdict]
            table.add_row(
                requirement if n == 0 else "",
                check.id.split(".", 1)[1],
                f"[{style}]{check.verdict}[/]",
                check.detail,
                end_section=n == len(checks) - 1,
            )
    console.print(table)
    style = "bold green" if report.verdict == "pass" else "bold red"
    console.print(f"[{style}]{verdict_line(report)}[/]")
    return buffer.getvalue()
