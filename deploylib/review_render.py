"""The review document (review.review_document) rendered two ways: text for the terminal, every
line at most 100 columns (a console link is the one exception: printed whole on its own line so
terminals keep it clickable), and Markdown for a pull-request comment (one collapsible section
per stack, at most MARKDOWN_LIMIT characters).

The first five lines of both say whether the plan is safe: where it goes (environment, account,
region), what was built (commit, manifest hash, time), and the counts of stacks, resources,
stateful resources touched and IAM / security-group changes.
"""
from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from typing import Any

from .plans import Action
from .review_security import Source

JSON = dict[str, Any]
WIDTH = 100
MARKDOWN_LIMIT = 60_000  # GitHub refuses comments over 65,536 characters
MAX_CHANGE_LINES = 12  # per warning in the terminal and Markdown; review.json holds them all
VALUE_WIDTH = 60  # a parameter value longer than this is cut in the middle
SKIPPED_ACTIONS = (str(Action.UNCHANGED), str(Action.NO_OP))  # one line in review.md, no section
WARNING_LABELS = {"iam_changes": "IAM/policy", "security_group_changes": "Security group"}
COUNT_LABELS = {"iam_changes": "IAM", "security_group_changes": "security-group"}
SOURCE_LABELS = {Source.CHANGE_SET: "from the change set", Source.TEMPLATES: "from the templates",
                 Source.TEMPLATE: "from the template"}


def wrap(line: str, indent: int = 0, hanging: int = 4) -> list[str]:
    """One logical line as lines of at most WIDTH columns; continuation lines indented further."""
    if len(line) + indent <= WIDTH:
        return [" " * indent + line]
    return textwrap.wrap(line, WIDTH, initial_indent=" " * indent, subsequent_indent=" " * (indent + hanging),
                         break_on_hyphens=False)


def clip(value: str, width: int = VALUE_WIDTH) -> str:
    return value if len(value) <= width else f"{value[:width // 2 - 2]}...{value[-(width // 2 - 2):]}"


# ---- shared wording ---------------------------------------------------------------------------
def header_lines(document: JSON) -> list[str]:
    p, s = document["provenance"], document["summary"]
    stacks = ", ".join(f"{n} {column}" for column, n in s["stacks"].items())
    r = s["resources"]
    from_templates = f" ({r['added_from_templates']} from templates)" if r["added_from_templates"] else ""
    stateful = s["stateful_touched"]
    touched = (f"{len(stateful)} stateful touched ({clip(', '.join(stateful), 50)})" if stateful
               else "no stateful resource touched")
    return [
        f"{document['environment']} (account {p['account']}, region {p['region']})",
        f"commit {p['commit'][:12]}, manifest sha256 {p['manifest_sha256'][:12]}, reviewed {p['reviewed_at']}",
        f"stacks: {stacks}",
        f"resources: {r['added']} added{from_templates}, {r['modified']} modified, {r['removed']} removed, "
        f"{r['replaced']} replaced",
        f"{touched}; {s['iam_changes']} IAM change(s); {s['security_group_changes']} security-group change(s)",
    ]


def parameter_text(item: JSON) -> str:
    if item["no_echo"]:
        return f"parameter {item['name']}: passed (NoEcho, value hidden)"
    old, new = item["old"], item["new"]
    if old is None:
        return f"parameter {item['name']}: added, {clip(repr(new))}"
    if new is None:
        return f"parameter {item['name']}: removed (was {clip(repr(old))})"
    return f"parameter {item['name']}: {clip(repr(old))} -> {clip(repr(new))}"


def modified_text(item: JSON) -> str:
    if item["properties"] == ["Tags"] or (not item["properties"] and item.get("scope") == ["Tags"]):
        return f"{item['logical_id']} {item['type']} [tags only]"
    return f"{item['logical_id']} {item['type']} [{', '.join(item['properties'])}]" if item["properties"] \
        else f"{item['logical_id']} {item['type']}"


def warning_title(label: str, item: JSON) -> str:
    what = f": {item['property']}" if item.get("property") else ""
    source = SOURCE_LABELS[Source(item["source"])]
    note = f"; {item['note']}" if item.get("note") else ""
    return f"{label}: {item['action']} {item['logical_id']} {item['type']}{what} ({source}{note})"


def shown_changes(item: JSON) -> list[str]:
    changes: list[str] = item["changes"]
    if len(changes) <= MAX_CHANGE_LINES:
        return changes
    return changes[:MAX_CHANGE_LINES] + [f"... {len(changes) - MAX_CHANGE_LINES} more in review.json"]


def stack_counts(entry: JSON) -> str:
    counts = [f"{len(entry[key])} {key}" for key in ("added", "modified", "removed") if entry.get(key)]
    counts += [f"{len(entry[key])} {label} change(s)" for key, label in COUNT_LABELS.items() if entry.get(key)]
    return ", ".join(counts)


# ---- text -------------------------------------------------------------------------------------
def _stack_text(entry: JSON) -> Iterator[str]:
    first, *more = (entry.get("note") or "").splitlines() or [""]
    yield from wrap(f"{entry['stack']} ({entry['region']}): {entry['action'].upper()}" + (f" - {first}" if first else ""))
    for line in more:
        yield from wrap(line.strip(), 4)
    marker = " (from the template)" if entry.get("from_template") else ""
    for label in ("added", "modified", "removed"):
        items = entry.get(label, [])
        if items:
            yield f"  {label} ({len(items)}){marker if label == 'added' else ''}:"
            for item in items:
                yield from wrap(modified_text(item) if label == "modified" else f"{item['logical_id']} {item['type']}", 4)
    for item in entry.get("replacements", []):
        stateful = " STATEFUL" if item["stateful"] else ""
        yield from wrap(f"REPLACES{stateful}: {item['logical_id']} {item['type']} (Replacement="
                        f"{item['replacement']}, caused by {', '.join(item['caused_by']) or '?'})", 2)
    for key, label in WARNING_LABELS.items():
        for item in entry.get(key, []):
            yield from wrap(warning_title(label, item), 2)
            for change in shown_changes(item):
                yield from wrap(change, 6, hanging=2)
    for item in entry.get("parameter_changes", []):
        yield from wrap(parameter_text(item), 2)
    for finding in entry.get("guard_findings", []):
        yield from wrap(f"BLOCKED ({finding['guard']} guard): {finding['message']}", 2)
    if entry.get("console_url"):
        yield "  console:"
        yield entry["console_url"]


def render_text(document: JSON) -> str:
    first, *rest = header_lines(document)
    lines = ["", f"=== Review: {first} ==="]
    for line in rest:
        lines.extend(wrap(line))
    for entry in document["stacks"]:
        lines.append("")
        lines.extend(_stack_text(entry))
    return "\n".join(lines)


# ---- Markdown ---------------------------------------------------------------------------------
def _md_list(title: str, rows: list[str]) -> list[str]:
    return [f"**{title}**", "", *[f"- {row}" for row in rows], ""] if rows else []


def _md_stack_body(entry: JSON) -> list[str]:
    lines = [f"> {line}" for line in (entry.get("note") or "").splitlines()] + ([""] if entry.get("note") else [])
    marker = " (from the template)" if entry.get("from_template") else ""
    lines += _md_list(f"Added{marker}", [f"`{i['logical_id']}` {i['type']}" for i in entry.get("added", [])])
    lines += _md_list("Modified", [f"`{modified_text(i)}`" for i in entry.get("modified", [])])
    lines += _md_list("Removed", [f"`{i['logical_id']}` {i['type']}" for i in entry.get("removed", [])])
    lines += _md_list("Replaced", [f"`{i['logical_id']}` {i['type']}{' **STATEFUL**' if i['stateful'] else ''}, "
                                   f"caused by {', '.join(i['caused_by']) or '?'}" for i in entry.get("replacements", [])])
    for key, label in WARNING_LABELS.items():
        for item in entry.get(key, []):
            lines += [f"**{warning_title(label, item)}**", "", "```diff", *shown_changes(item), "```", ""]
    lines += _md_list("Parameters", [parameter_text(i).removeprefix("parameter ") for i in entry.get("parameter_changes", [])])
    lines += _md_list("Blocked", [f"{f['guard']} guard: {f['message']}" for f in entry.get("guard_findings", [])])
    if entry.get("console_url"):
        lines += [f"[Open the change set in the console]({entry['console_url']})", ""]
    return lines


def _md_stack(entry: JSON, body: Callable[[JSON], list[str]]) -> list[str]:
    counts = stack_counts(entry)
    summary = f"<b>{entry['stack']}</b> ({entry['region']}): {entry['action'].upper()}{' - ' + counts if counts else ''}"
    return ["<details>", f"<summary>{summary}</summary>", "", *body(entry), "</details>", ""]


def _md_console_only(entry: JSON) -> list[str]:
    return [f"[Open the change set in the console]({entry['console_url']})", ""] if entry.get("console_url") else []


def render_markdown(document: JSON) -> str:
    """The review for a pull-request comment; over MARKDOWN_LIMIT, the per-stack details shrink to
    their counts and console links (review.json has everything)."""
    first, *rest = header_lines(document)
    head = [f"### Review: {first}", "", *[f"- {line}" for line in rest], ""]
    skipped = [e for e in document["stacks"] if e["action"] in SKIPPED_ACTIONS and not e.get("parameter_changes")]
    if skipped:
        names = ", ".join(f"{e['stack']} ({e['action']})" for e in skipped)
        head += [f"Nothing to run: {names}", ""]
    shown = [e for e in document["stacks"] if e not in skipped]
    for body in (_md_stack_body, _md_console_only):
        text = "\n".join(head + [line for entry in shown for line in _md_stack(entry, body)])
        if len(text) <= MARKDOWN_LIMIT:
            return text + "\n"
    note = "\n_Too many stacks for one comment: the per-stack sections are in review.json._\n"
    return "\n".join(head) + note
