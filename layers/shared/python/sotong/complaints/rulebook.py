"""The rules a hospital's classifier runs: the shipped YAML, minus what it turns off, plus its own.

`shipped.yaml` is package data. At synth the merged set for one hospital is written into its
config layer as JSON (`/opt/hospital/rules.json`), so a function reads JSON and never YAML; the
CLI, the local stack and the tests compose it from the YAML.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sotong.config.schema import ClassifierRule

if TYPE_CHECKING:
    from sotong.config.schema import HospitalConfig

SHIPPED_PATH = Path(__file__).parent / "rules" / "shipped.yaml"
LAYER_RULES_PATH = "/opt/hospital/rules.json"
RULES_PATH_ENV = "SOTONG_RULES_PATH"
AFTER_TREATMENT = "after_treatment"

Origin = Literal["shipped", "hospital"]


class RulebookError(ValueError):
    """A hospital's rules that cannot be merged; `field` names the setting."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True)
class Rule:
    """A rule ready to compile: phrases, or groups that must all be in the text."""

    id: str | None
    origin: Origin
    category: str | None
    urgency: str | None
    kind: str | None
    phrases: tuple[str, ...] = ()
    groups: tuple[tuple[str, ...], ...] = ()
    harm: bool = False


@dataclass(frozen=True)
class Rulebook:
    """The merged rules one hospital's classifier runs, with the shipped markers and lists."""

    hospital_id: str
    markers: dict[str, tuple[str, ...]]
    after_treatment: tuple[str, ...]
    rules: tuple[Rule, ...]

    def to_json(self) -> str:
        data = {
            "hospital_id": self.hospital_id,
            "markers": self.markers,
            "after_treatment": self.after_treatment,
            "rules": [
                {k: v for k, v in rule.__dict__.items() if v not in (None, (), False)}
                for rule in self.rules
            ],
        }
        return json.dumps(data, ensure_ascii=False, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Rulebook:
        data = json.loads(text)
        return cls(
            hospital_id=data["hospital_id"],
            markers={k: tuple(v) for k, v in data["markers"].items()},
            after_treatment=tuple(data["after_treatment"]),
            rules=tuple(
                Rule(
                    id=r.get("id"),
                    origin=r["origin"],
                    category=r.get("category"),
                    urgency=r.get("urgency"),
                    kind=r.get("kind"),
                    phrases=tuple(r.get("phrases", ())),
                    groups=tuple(tuple(g) for g in r.get("groups", ())),
                    harm=bool(r.get("harm", False)),
                )
                for r in data["rules"]
            ),
        )

    def ids(self) -> list[str]:
        return [rule.id for rule in self.rules if rule.id]


@lru_cache(maxsize=1)
def shipped() -> dict[str, Any]:
    """The shipped rules file, parsed and checked against the hospital rule schema."""
    import yaml  # only the CLI, the CDK app, the local stack and the tests read YAML

    data = yaml.safe_load(SHIPPED_PATH.read_text(encoding="utf-8"))
    data["rules"] = [ClassifierRule.model_validate(rule) for rule in data["rules"]]
    return data


def shipped_ids() -> list[str]:
    return [rule.id for rule in shipped()["rules"] if rule.id]


def _rule(
    rule: ClassifierRule, origin: Origin, lists: dict[str, tuple[str, ...]], where: str
) -> Rule:
    groups = []
    for index, group in enumerate(rule.all_of):
        if isinstance(group, str):
            if group not in lists:
                raise RulebookError(
                    f"{where}.all_of[{index}]",
                    f"no shipped list '{group}'; known: {', '.join(sorted(lists))}",
                )
            groups.append(lists[group])
        else:
            groups.append(tuple(group))
    return Rule(
        rule.id,
        origin,
        rule.category,
        rule.urgency,
        rule.kind,
        rule.phrases,
        tuple(groups),
        rule.harm or rule.urgency == "critical",
    )


def compose(hospital: HospitalConfig) -> Rulebook:
    """The hospital's own rules first, then the shipped ones it did not turn off."""
    data = shipped()
    lists = {name: tuple(spec["phrases"]) for name, spec in data["lists"].items()}
    settings = hospital.complaints
    known = set(shipped_ids())
    for index, rule_id in enumerate(settings.disable_rules):
        if rule_id not in known:
            raise RulebookError(
                f"complaints.disable_rules[{index}]",
                f"no shipped rule '{rule_id}' (see sotong/complaints/rules/shipped.yaml)",
            )
    for index, rule in enumerate(settings.rules):
        if rule.id in known:
            raise RulebookError(
                f"complaints.rules[{index}].id",
                f"'{rule.id}' is a shipped rule's id; choose another, or disable the shipped one",
            )
    off = set(settings.disable_rules)
    own = [
        _rule(rule, "hospital", lists, f"complaints.rules[{index}]")
        for index, rule in enumerate(settings.rules)
    ]
    theirs = [
        _rule(rule, "shipped", lists, f"shipped rule {rule.id}")
        for rule in data["rules"]
        if rule.id not in off
    ]
    return Rulebook(
        hospital_id=hospital.hospital_id,
        markers={name: tuple(words) for name, words in data["markers"].items()},
        after_treatment=lists[AFTER_TREATMENT],
        rules=(*own, *theirs),
    )


def for_hospital(hospital: HospitalConfig) -> Rulebook:
    """The merged rules from the config layer when it holds this hospital's, else composed."""
    path = Path(os.environ.get(RULES_PATH_ENV, LAYER_RULES_PATH))
    if path.is_file():
        book = Rulebook.from_json(path.read_text(encoding="utf-8"))
        if book.hospital_id == hospital.hospital_id:
            return book
    return compose(hospital)


def checked(hospital: HospitalConfig, source: str) -> Rulebook:
    """`compose`, with a problem reported like any other config error (file, field, problem)."""
    from sotong.config.loader import ConfigError

    try:
        return compose(hospital)
    except RulebookError as error:
        raise ConfigError(source, [(error.field, error.problem)]) from None
