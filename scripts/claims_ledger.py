"""Collect the claims ledger that the lessons wrote while running, into one table; check that it is complete.

    python scripts/claims_ledger.py                 # print the table (Markdown)
    python scripts/claims_ledger.py --check         # also fail if a lesson's claim has no proof or no control
    python scripts/claims_ledger.py --readme        # also write the table into README.md between its markers

The rows come from lessons.claims.prove / control, written when the notebooks run (`make test` runs them in
the fast budget, so CI regenerates the ledger every time).
"""

import argparse
import sys
from pathlib import Path

from lessons.claims import CLAIMS, PENDING, read_ledger

ROOT = Path(__file__).resolve().parents[1]

START, END = "<!-- claims ledger: start -->", "<!-- claims ledger: end -->"


def lessons_present() -> set[str]:
    """The lesson numbers that have a notebook in this checkout (their claims must be in the ledger)."""
    return {p.name.split("_")[0] for p in (ROOT / "notebooks").glob("[0-9][0-9]*_*.py")}


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (a '|' in |x - y| would end the cell)."""
    return text.replace("|", "\\|")


def table(rows: list[dict]) -> str:
    """One line per check: claim, lesson, statement (first check only), what, value, threshold, control."""
    lines = [
        "| claim | lesson | check | value | threshold | control (rejected) |",
        "|---|---|---|---|---|---|",
    ]
    by_claim: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        by_claim.setdefault(r["claim"], {"proof": [], "control": []})[r["kind"]].append(r)
    for claim, kinds in by_claim.items():
        controls = ", ".join(
            f"{_fmt(c['value'])}{'' if c['ok'] else ' (NOT rejected)'}" for c in kinds["control"]
        )
        for i, p in enumerate(
            kinds["proof"]
            or [
                {
                    "what": "(no proof)",
                    "value": float("nan"),
                    "sense": "",
                    "threshold": float("nan"),
                    "ok": False,
                }
            ]
        ):
            verdict = "" if p["ok"] else " FAILS"
            lines.append(
                f"| {claim if i == 0 else ''} | {CLAIMS[claim][0] if i == 0 else ''} | {_cell(p['what'])} | "
                f"{_fmt(p['value'])}{verdict} | {p['sense']} {_fmt(p['threshold'])} | "
                f"{controls if i == 0 else ''} |"
            )
    for claim, why in PENDING.items():
        lines.append(f"| {claim} | {CLAIMS[claim][0]} | pending: {why} | | | |")
    return "\n".join(lines)


def problems(rows: list[dict]) -> list[str]:
    """What keeps the ledger from being complete: claims of present lessons with no passing proof or control."""
    present = lessons_present()
    out = []
    for claim, (lesson, _) in CLAIMS.items():
        if lesson not in present or claim in PENDING:
            continue
        mine = [r for r in rows if r["claim"] == claim]
        if not any(r["kind"] == "proof" for r in mine):
            out.append(f"{claim} (lesson {lesson}) has no proof in the ledger")
        if not any(r["kind"] == "control" for r in mine):
            out.append(f"{claim} (lesson {lesson}) has no control in the ledger")
        out += [f"{claim}: {r['kind']} '{r['what']}' did not hold" for r in mine if not r["ok"]]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a claim has no proof or no control")
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    rows = read_ledger()
    text = table(rows)
    print(text)
    if args.readme:
        readme = (ROOT / "README.md").read_text()
        if START not in readme or END not in readme:
            raise SystemExit(f"README.md has no {START} ... {END} markers to write the ledger between.")
        head, rest = readme.split(START, 1)
        readme = head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1]
        (ROOT / "README.md").write_text(readme)
    if args.check:
        found = problems(rows)
        for line in found:
            print("ledger:", line, file=sys.stderr)
        if found:
            return 1
        print(
            f"ledger: every claim of lessons {', '.join(sorted(lessons_present()))} has a proof and a rejected control."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
