"""References from Dagster descriptions to the rules users look up: ``docs/RULES.md`` (issue 15).

Every rule there is a heading holding only its ID (``### CON-2``), so its anchor is the ID in lower case
(``#con-2``) on GitHub and in any renderer that follows GitHub's heading slugs.

Why ``rule_ref`` renders as it does: the Dagster UI shows an asset's description as Markdown on its page, but
as plain text in the asset graph, the asset list and most check and sensor views, and it resolves a relative
link against its own address (``http://<dagster>/assets/…/docs/RULES.md`` does not exist). So:

- with ``CRM_PIPELINES_RULES_URL`` set where the code location runs (the address of ``docs/RULES.md`` as the
  team hosts its clone, e.g. ``https://github.com/acme/crm_pipelines/blob/main/docs/RULES.md``), a rule is a
  Markdown link to its section: ``[CON-2](https://…/docs/RULES.md#con-2)``, clickable on the asset page;
- without it, ``CON-2 (docs/RULES.md#con-2)``: no link that would lead nowhere, and read as plain text it
  still says where the rule is explained, in the repository the deployment runs from.

``cited_rules`` reads rule IDs the way the code and README cite them, shorthand included (``CON-2/3/4/11``,
``DEAL-1..5``); the doc's tests use it to hold ``docs/RULES.md`` to what the code cites.
"""

from __future__ import annotations

import os
import re

RULES_DOC = "docs/RULES.md"
RULES_URL_ENV = "CRM_PIPELINES_RULES_URL"
# SPEC.md's rule groups; CONF before CON so that "CONF-1" is never read as "CON" followed by "F-1"
GROUPS = ("TOP", "CONF", "CON", "COM", "DEAL", "ROLL", "DEL", "OPS")
_ID = re.compile(rf"^(?:{'|'.join(GROUPS)})-[1-9]\d*$")
_CITED = re.compile(rf"\b({'|'.join(GROUPS)})-(\d+)((?:/\d+)+|\.\.\d+)?\b")


def anchor(rule_id: str) -> str:
    """The rule's anchor in ``docs/RULES.md`` (GitHub's slug of a heading that is the ID alone)."""
    if not _ID.match(rule_id):
        raise ValueError(f"{rule_id!r} is not a rule ID such as CON-2 (one rule; for several use rule_refs)")
    return rule_id.lower()


def rule_ref(rule_id: str) -> str:
    """``rule_id`` as a description should cite it (the module docstring says why this form)."""
    base = os.environ.get(RULES_URL_ENV, "").strip()
    if base:
        return f"[{rule_id}]({base.split('#', 1)[0]}#{anchor(rule_id)})"
    return f"{rule_id} ({RULES_DOC}#{anchor(rule_id)})"


def rule_refs(*rule_ids: str) -> str:
    """Several rules, e.g. ``rule_refs("CON-2", "CON-11")``: a link each when the doc's address is known, else
    one plain mention naming each section."""
    if not rule_ids:
        raise ValueError("rule_refs needs at least one rule ID")
    if len(rule_ids) == 1 or os.environ.get(RULES_URL_ENV, "").strip():
        return ", ".join(rule_ref(r) for r in rule_ids)
    return f"{', '.join(rule_ids)} ({RULES_DOC}: {', '.join('#' + anchor(r) for r in rule_ids)})"


def _rule_key(rule_id: str) -> tuple[int, int]:
    group, number = rule_id.rsplit("-", 1)
    return GROUPS.index(group), int(number)


def with_rule_refs(text: str) -> str:
    """``text`` (a Dagster description) followed by where each rule it cites is explained, in SPEC order; text
    that cites no rule is returned as it is. The one way descriptions point at ``docs/RULES.md``."""
    cited = sorted(cited_rules(text), key=_rule_key)
    if not cited:
        return text
    return f"{text.rstrip()}\n\nRules: {rule_refs(*cited)}"


def cited_rules(text: str) -> set[str]:
    """Every rule ID ``text`` cites: ``CON-2``, ``CON-2/3/11`` (CON-2, CON-3, CON-11), ``DEAL-1..5``."""
    found: set[str] = set()
    for group, first, more in _CITED.findall(text):
        numbers = [int(first)]
        if more.startswith(".."):
            numbers = list(range(int(first), int(more[2:]) + 1))
        elif more:
            numbers += [int(n) for n in more.strip("/").split("/")]
        found.update(f"{group}-{n}" for n in numbers)
    return found
