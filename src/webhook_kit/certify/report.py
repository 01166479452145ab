"""Certify reports: a text table grouped by requirement, JSON, and JUnit XML."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

from webhook_kit.certify.model import REQUIREMENTS, Report
from webhook_kit.display import markup_safe, visible

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
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="url", value=visible(report.url))
    ET.SubElement(properties, "property", name="strict", value=str(report.strict).lower())
    for check in report.checks:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"certify.{check.requirement}",
            name=check.id,
            time=f"{check.duration_ms / 1000:.3f}",
        )
        ET.SubElement(
            ET.SubElement(case, "properties"),
            "property",
            name="severity",
            value=str(check.severity or "none"),
        )
        if check.verdict == "fail":
            ET.SubElement(
                case,
                "failure",
                message=visible(check.detail[:200]),
                type=f"severity:{check.severity}",
            ).text = visible(check.detail)
        elif check.verdict == "skip":
            ET.SubElement(case, "skipped", message=visible(check.detail))
        else:
            ET.SubElement(case, "system-out").text = f"{check.verdict}: {visible(check.detail)}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def verdict_line(report: Report) -> str:
    c = report.counts()
    strict = ", strict" if report.strict else ""
    return (
        f"{report.verdict.upper()}: {visible(report.url)} "
        f"({c['pass']} passed, {c['fail']} failed, {c['warn']} warnings, {c['skip']} skipped"
        f"{strict})"
    )


def root_cause_lines(report: Report) -> list[str]:
    """Each failure that blocked other checks, once, with its fix (it is in its detail)."""
    return [
        f"Root cause: {c.id} ({sum(1 for x in report.checks if x.blocked_by == c.id)} checks "
        f"blocked): {c.detail}"
        for c in report.root_causes()
    ]


def to_text(report: Report, *, color: bool = False, width: int = 120) -> str:
    """A table per requirement, then one verdict line; rich renders it (colour on a terminal)."""
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=width)
    table = Table(
        title=f"webhook-kit certify {markup_safe(report.url)}", show_lines=False, expand=True
    )
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
                f"[{style}]{check.verdict}[/]"
                + (" (strict)" if check.verdict == "fail" and check.severity == "warn" else ""),
                markup_safe(check.detail),
                end_section=n == len(checks) - 1,
            )
    console.print(table)
    for line in root_cause_lines(report):
        console.print(f"[bold red]{markup_safe(line)}[/]")
    style = "bold green" if report.verdict == "pass" else "bold red"
    console.print(f"[{style}]{markup_safe(verdict_line(report))}[/]")
    return buffer.getvalue()
