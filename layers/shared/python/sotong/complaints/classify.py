"""Kind, category and urgency of a complaint from its text: the hospital's rules, then defaults.

The rule classifier works offline and on the standard library only; the phrase tables are built
once, when the classifier is constructed (once per Lambda process). How phrases match is described
in `sotong.complaints.default_rules`. Urgency is the most severe signal found; a critical signal is
never outvoted (it also decides the category among its own), since a critical complaint alerts a
person at once and missing one costs more than a false alarm.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from sotong.complaints.default_rules import (
    ABSENCE_MARKERS,
    AFTER_TREATMENT,
    DEFAULT_RULES,
    NEGATION_MARKERS,
    TOGETHER,
    VISIT_MARKERS,
    Together,
)
from sotong.config.schema import KINDS, URGENCIES, ClassifierRule

if TYPE_CHECKING:
    from sotong.config.schema import HospitalConfig

CLASSIFIER_ENV = "SOTONG_CLASSIFIER"
BEDROCK_MODEL_ENV = "SOTONG_BEDROCK_MODEL_ID"

HOSPITAL_WEIGHT = 2.0  # a hospital's own rule counts twice a shipped one for the category
DEFAULT_WEIGHT = 1.0
HINT_WEIGHT = 1.5  # the category the patient picked: beats one weak phrase, not two

_SEVERITY = {"normal": 0, "high": 1, "critical": 2}
_HANGUL_FIRST, _HANGUL_LAST, _FINALS = 0xAC00, 0xD7A3, 28
_FINAL_SS, _FINAL_S = 20, 19  # the final consonants ㅆ and ㅅ
_SENTENCE_END = ".!?。…"
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))


@dataclass(frozen=True)
class Classification:
    kind: str  # complaint | suggestion | compliment
    category: str  # one of hospital.complaints.categories
    urgency: str  # critical | high | normal
    matched: tuple[str, ...]  # the phrases that decided it, for staff to see why
    classifier: str  # "rules" or "bedrock"


class Classifier(Protocol):
    def classify(self, text: str, category_hint: str | None = None) -> Classification: ...


def normalise(text: str) -> str:
    """Lower-case, full-width folded, invisible characters dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).lower()
    return " ".join(text.split())


_TYPOS = {
    code: code - 1
    for code in range(_HANGUL_FIRST, _HANGUL_LAST + 1)
    if (code - _HANGUL_FIRST) % _FINALS == _FINAL_SS
}


def _fold_typos(text: str) -> str:
    """A final ㅆ read as ㅅ, both in the text and in phrases: '다쳣' is '다쳤', '셧' is '셨'.

    The commonest slip in typed Korean; no word a rule depends on differs only by it. Keeps the
    length, so offsets into the folded text are offsets into the normalised one.
    """
    return text.translate(_TYPOS)


def _open_syllable(char: str) -> bool:
    code = ord(char) - _HANGUL_FIRST
    return 0 <= code <= _HANGUL_LAST - _HANGUL_FIRST and code % _FINALS == 0


def _continues(compact: str, end: int, open_char: str) -> bool:
    """'진' continues an open '지' (지 + ㄴ): a stem's last syllable takes an ending's final."""
    if end > len(compact):
        return False
    code = ord(compact[end - 1]) - _HANGUL_FIRST
    return (
        0 <= code <= _HANGUL_LAST - _HANGUL_FIRST
        and code - code % _FINALS == ord(open_char) - _HANGUL_FIRST
    )


@dataclass(frozen=True)
class _Phrase:
    shown: str  # as written in the rule, for `matched`
    key: str  # normalised, without spaces
    at_word_start: bool
    at_word_end: bool
    spaces: frozenset[int]  # where the phrase has a space, as offsets into `key`
    # Ends in a syllable without a final consonant, which an ending may add: '넘어지' ->
    # '넘어진', '넘어질', '넘어짐'. Used for critical rule phrases only (see `_Text.find`).
    open_end: bool
    stem_key: str  # `key` without an open last syllable: what a stem search looks for


@dataclass(frozen=True)
class _Rule:
    category: str | None
    urgency: str | None
    kind: str | None
    phrases: tuple[_Phrase, ...]
    priority: int  # 1: the hospital's, 0: shipped
    weight: float


@dataclass(frozen=True)
class _Match:
    """A phrase found in the text, with what it still says after longer phrases had their say."""

    start: int
    end: int
    rule: _Rule
    phrase: _Phrase
    category: str | None
    urgency: str | None
    kind: str | None

    @property
    def length(self) -> int:
        return self.end - self.start


def _compile_phrase(raw: str) -> _Phrase | None:
    text = raw.strip()
    at_start = text.startswith("^")
    at_end = text.endswith("$") and len(text) > 1
    words = normalise(text.removeprefix("^").removesuffix("$")).split()
    key = _fold_typos("".join(words))
    if not key:
        return None
    spaces, offset = set(), 0
    for word in words[:-1]:
        offset += len(word)
        spaces.add(offset)
    open_end = len(key) >= 2 and not at_end and _open_syllable(key[-1])
    stem_key = key[:-1] if open_end else key
    return _Phrase(" ".join(words), key, at_start, at_end, frozenset(spaces), open_end, stem_key)


def _compile(rules: Iterable[ClassifierRule], priority: int, weight: float) -> list[_Rule]:
    out = []
    for rule in rules:
        phrases = tuple(p for p in map(_compile_phrase, rule.phrases) if p is not None)
        if phrases:
            out.append(_Rule(rule.category, rule.urgency, rule.kind, phrases, priority, weight))
    return out


def _compile_together(together: Together) -> tuple[_Rule, list[tuple[_Phrase, ...]]]:
    rule = _Rule(together.category, together.urgency, None, (), 0, DEFAULT_WEIGHT)
    groups = [tuple(p for p in map(_compile_phrase, group) if p) for group in together.groups]
    return rule, groups


class _Text:
    """The normalised text without spaces, remembering where words begin and end."""

    def __init__(self, text: str) -> None:
        words = _fold_typos(normalise(text)).split(" ")
        chars: list[str] = []
        word_of: list[int] = []
        for index, word in enumerate(words):
            chars.extend(word)
            word_of.extend([index] * len(word))
        self.compact = "".join(chars)
        self.word_of = word_of
        self.words = words
        self.word_starts = []
        offset = 0
        for word in words:
            self.word_starts.append(offset)
            offset += len(word)
        n = len(chars)
        self.starts = [
            chars[i].isalnum()
            and (i == 0 or word_of[i - 1] != word_of[i] or not chars[i - 1].isalnum())
            for i in range(n)
        ]
        self.ends = [
            chars[i].isalnum()
            and (i == n - 1 or word_of[i + 1] != word_of[i] or not chars[i + 1].isalnum())
            for i in range(n)
        ]

    def find(
        self, phrase: _Phrase, lenient: bool = False, stem: bool = False
    ) -> Iterable[tuple[int, int]]:
        """Where the phrase occurs. Lenient: a stray space inside a word is forgiven. Stem: a last
        open syllable may take an ending's final consonant ('넘어지' finds '넘어진', '넘어질')."""
        key, compact = phrase.key, self.compact
        open_end = stem and phrase.open_end
        search = phrase.stem_key if open_end else key
        start = compact.find(search)
        while start >= 0:
            end = start + len(key)
            if (
                (not open_end or _continues(compact, end, key[-1]))
                and (not phrase.at_word_start or self.starts[start])
                and (not phrase.at_word_end or self.ends[end - 1])
                and self._joins_words_fairly(phrase, start, end, lenient)
            ):
                yield start, end
            start = compact.find(search, start + 1)

    def _joins_words_fairly(self, phrase: _Phrase, start: int, end: int, lenient: bool) -> bool:
        """'대기시간' may match '대기 시간', but '고발' must not match '좁고 발렛'.

        Where the text has a space inside a match and the phrase has none, both sides of that
        space must hold at least two characters of the match; for a critical phrase one side
        is enough, so a stray space ('넘 어지셨어요') does not hide a fall.
        """
        if self.word_of[start] == self.word_of[end - 1]:
            return True
        cuts = [i for i in range(start + 1, end) if self.word_of[i] != self.word_of[i - 1]]
        edges = [start, *cuts, end]
        for n, cut in enumerate(cuts, start=1):
            if cut - start in phrase.spaces:
                continue
            before, after = cut - edges[n - 1], edges[n + 1] - cut
            if (max if lenient else min)(before, after) < 2:
                return False
        return True

    def after(self, end: int, words: int = 1) -> tuple[str, ...]:
        """The rest of the word a match ends in, then the next `words` words (empty after a
        sentence end)."""
        word = self.word_of[end - 1]
        out = [self.compact[end : self.word_starts[word] + len(self.words[word])]]
        out += [
            self.words[w] if w < len(self.words) else "" for w in range(word + 1, word + 1 + words)
        ]
        for n, part in enumerate(out):
            for index, char in enumerate(part):
                if char in _SENTENCE_END:
                    return (*out[:n], part[:index], *[""] * (len(out) - n - 1))
        return tuple(out)

    def previous_word(self, start: int) -> str:
        word = self.word_of[start]
        return self.words[word - 1] if word > 0 else ""


_ABSENCE = tuple(map(_fold_typos, ABSENCE_MARKERS))
_NEGATION = tuple(map(_fold_typos, NEGATION_MARKERS))
_VISIT = tuple(map(_fold_typos, VISIT_MARKERS))
_HEDGES = ("거의", "전혀", "하나도", "별로", "크게", "다행히")  # between a harm and its absence
_PARTICLES = ("", "이", "가", "은", "는", "을", "를", "도")


def _negation(text: _Text, start: int, end: int, treated: bool = True) -> str | None:
    """Why a critical phrase does not make the complaint critical, or None if it does.

    'purpose' for a precaution ('넘어지지 않게'), 'absence' for '출혈은 없었어요' and 'visit' for
    the reason the patient came ('열이 나서 왔는데'), unless the text tells of a treatment.
    """
    rest, following, then = text.after(end, words=2)
    tail = rest + following
    if tail.startswith(_ABSENCE) or (following in _HEDGES and (rest + then).startswith(_ABSENCE)):
        return "absence"  # '출혈은 없었어요', '출혈도 거의 없었대요'
    if not treated and (
        (rest.endswith("서") and following.startswith(_VISIT))
        or (not rest and following.endswith("서") and then.startswith(_VISIT))  # '숨이 차서 왔'
    ):
        return "visit"
    if any(marker in tail for marker in _NEGATION):
        return "purpose"
    if text.previous_word(start) in ("안", "못") and rest.endswith(("게", "도록")):
        return "purpose"  # '안 넘어지게', '안 다치도록'
    if rest in _PARTICLES and (
        (following.endswith("지") and then.startswith(_NEGATION))
        or (following in ("안", "못") and then.endswith(("게", "도록", "게끔")))
    ):
        return "purpose"  # a harm named as a noun: '욕창이 생기지 않게', '욕창 안 생기게'
    return None


def _first_match(
    text: _Text, rule: _Rule, group: tuple[_Phrase, ...], treated: bool
) -> _Match | None:
    """The first phrase of a `Together` group in the text that is not negated."""
    for phrase in group:
        if phrase.key not in text.compact:
            continue  # the quick test first: most phrases are not in the text at all
        for start, end in text.find(phrase, lenient=True):
            if _negation(text, start, end, treated) is None:
                return _Match(start, end, rule, phrase, rule.category, rule.urgency, None)
    return None


_Dimension = Literal["category", "urgency", "kind"]


def _hides(outer: _Match, inner: _Match, dimension: _Dimension) -> bool:
    """The longer phrase decides: '불친절' hides the compliment in '친절', '감염내과' the infection.

    Only for what the longer phrase itself says: a critical signal yields only to a phrase that
    sets an urgency, and '대기' inside '대기시간' still counts, since both say wait_time.
    """
    if outer is inner or not (outer.start <= inner.start and inner.end <= outer.end):
        return False
    if outer.length == inner.length and outer.rule.priority <= inner.rule.priority:
        return False
    said = getattr(outer.rule, dimension)
    return said is not None and said != getattr(inner.rule, dimension)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


class RuleClassifier:
    """The hospital's rules first, then the shipped defaults; offline, standard library only."""

    name = "rules"

    def __init__(self, hospital: HospitalConfig) -> None:
        self.labels: dict[str, str] = dict(hospital.complaints.categories)  # id -> Korean label
        self.categories: tuple[str, ...] = tuple(self.labels)
        own = _compile(hospital.complaints.rules, priority=1, weight=HOSPITAL_WEIGHT)
        shipped = _compile(DEFAULT_RULES, priority=0, weight=DEFAULT_WEIGHT)
        known = set(self.categories)
        self._rules = [r for r in own + shipped if r.category is None or r.category in known]
        self._together = [_compile_together(t) for t in TOGETHER if t.category in known]
        self._after_treatment = [p for p in map(_compile_phrase, AFTER_TREATMENT) if p]
        # What to look for first, per phrase: a critical phrase is a stem (see `_Text.find`).
        self._needles = [
            (phrase.stem_key if rule.urgency == "critical" else phrase.key, rule, phrase)
            for rule in self._rules
            for phrase in rule.phrases
        ]

    def _matches(self, text: _Text) -> list[_Match]:
        compact = text.compact
        found = []
        for needle, rule, phrase in self._needles:
            if needle in compact:  # the quick test first: most phrases are not in the text at all
                critical = rule.urgency == "critical"
                found += [
                    _Match(start, end, rule, phrase, rule.category, rule.urgency, rule.kind)
                    for start, end in text.find(phrase, lenient=critical, stem=critical)
                ]
        treated = any(p.key in compact and any(text.find(p)) for p in self._after_treatment)
        by_start: defaultdict[int, list[_Match]] = defaultdict(list)
        for m in found:
            by_start[m.start].append(m)
        longest = max((m.length for m in found), default=0)
        live = []
        for m in found:
            around = [
                o
                for start in range(max(0, m.end - longest), m.start + 1)
                for o in by_start.get(start, ())
            ]
            category, urgency, kind = (
                None if any(_hides(o, m, d) for o in around) else getattr(m.rule, d)
                for d in ("category", "urgency", "kind")
            )
            if m.rule.urgency and not urgency:
                continue  # '또 하나', '알레르기 검사': the longer phrase says it is no signal
            if urgency == "critical" and (negation := _negation(text, m.start, m.end, treated)):
                urgency = None
                if negation != "purpose":
                    category = None
            if category or urgency or kind:
                live.append(_Match(m.start, m.end, m.rule, m.phrase, category, urgency, kind))
        for rule, groups in self._together:
            found_all = []
            for group in groups:
                if (first := _first_match(text, rule, group, treated)) is None:
                    break  # every group must be there: no need to look at the rest
                found_all.append(first)
            else:
                live += found_all
        return live

    def classify(self, text: str, category_hint: str | None = None) -> Classification:
        matches = self._matches(_Text(text))
        urgency = "normal"
        for m in matches:
            if m.urgency and _SEVERITY[m.urgency] > _SEVERITY[urgency]:
                urgency = m.urgency
        by_urgency = [m for m in matches if urgency != "normal" and m.urgency == urgency]
        category, by_category = self._category(matches, by_urgency, urgency, category_hint)
        kind, by_kind = self._kind(matches)
        matched = _unique(m.phrase.shown for m in [*by_urgency, *by_category, *by_kind])
        return Classification(kind, category, urgency, matched, "rules")

    def _category(
        self,
        matches: list[_Match],
        by_urgency: list[_Match],
        urgency: str,
        hint: str | None,
    ) -> tuple[str, list[_Match]]:
        scored = [m for m in matches if m.category is not None]
        scores: defaultdict[str, float] = defaultdict(float)
        first: dict[str, int] = {}
        seen: set[tuple[str, str]] = set()
        for m in scored:
            assert m.category is not None
            first.setdefault(m.category, m.start)
            first[m.category] = min(first[m.category], m.start)
            if (m.category, m.phrase.key) not in seen:  # a phrase counts once
                seen.add((m.category, m.phrase.key))
                scores[m.category] += m.rule.weight
        if hint in self.categories:
            assert hint is not None
            scores[hint] += HINT_WEIGHT
        if not scores:
            return "other", []
        candidates = list(scores)
        if urgency == "critical":  # the critical signal's own category: safety or privacy
            own = {m.category for m in by_urgency if m.category in scores}
            candidates = [c for c in candidates if c in own] or candidates
        # Ties go to the category named first in the text.
        best = max(candidates, key=lambda c: (scores[c], -first.get(c, 1 << 30)))
        return best, [m for m in scored if m.category == best]

    @staticmethod
    def _kind(matches: list[_Match]) -> tuple[str, list[_Match]]:
        """Complaint unless praise or a proposal outweighs the signs of displeasure."""
        scores: defaultdict[str, float] = defaultdict(float)
        seen: set[tuple[str, str]] = set()
        for m in matches:
            if m.kind is not None and (m.kind, m.phrase.key) not in seen:
                seen.add((m.kind, m.phrase.key))
                scores[m.kind] += m.rule.weight
        complaint, suggestion, compliment = (scores[k] for k in KINDS)
        if complaint and complaint >= max(suggestion, compliment):
            kind = "complaint"
        elif compliment and compliment >= suggestion:
            kind = "compliment"
        elif suggestion:
            kind = "suggestion"
        else:
            return "complaint", []
        return kind, [m for m in matches if m.kind == kind]


class LazyClassifier:
    """Builds the real classifier on first use: compiling the rules costs ~170 ms, which functions
    that rarely classify (staff actions, SLA sweeps) should not pay on every cold start."""

    def __init__(self, hospital: HospitalConfig) -> None:
        self._hospital = hospital
        self._built: Classifier | None = None

    def classify(self, text: str, category_hint: str | None = None) -> Classification:
        if self._built is None:
            self._built = build_classifier(self._hospital)
        return self._built.classify(text, category_hint)


def classifier_for(hospital: HospitalConfig) -> Classifier:
    """The classifier the functions use, built on first use."""
    return LazyClassifier(hospital)


def build_classifier(hospital: HospitalConfig) -> Classifier:
    """The rule classifier, or Bedrock (backed by the rules) when SOTONG_CLASSIFIER=bedrock."""
    rules = RuleClassifier(hospital)
    if os.environ.get(CLASSIFIER_ENV, "rules").strip().lower() == "bedrock":
        from sotong.complaints.bedrock import DEFAULT_MODEL_ID, BedrockClassifier

        return BedrockClassifier(os.environ.get(BEDROCK_MODEL_ENV) or DEFAULT_MODEL_ID, rules)
    return rules


# ---- Measuring a classifier on a labelled set ---------------------------------------------------


@dataclass(frozen=True)
class LabelledItem:
    text: str
    kind: str
    category: str
    urgency: str
    line: int


def read_labelled(path: str | os.PathLike[str], categories: Sequence[str]) -> list[LabelledItem]:
    """JSON lines {"text", "kind", "category", "urgency"}; a bad line raises, naming it."""
    items = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}:{number}: expected an object")
        for name, allowed in (("kind", KINDS), ("category", categories), ("urgency", URGENCIES)):
            if data.get(name) not in allowed:
                raise ValueError(
                    f"{path}:{number}: {name} must be one of {', '.join(allowed)}, "
                    f"not {data.get(name)!r}"
                )
        if not isinstance(data.get("text"), str) or not data["text"].strip():
            raise ValueError(f"{path}:{number}: text is missing")
        items.append(
            LabelledItem(data["text"], data["kind"], data["category"], data["urgency"], number)
        )
    return items


@dataclass
class Evaluation:
    items: int = 0
    kind_correct: int = 0
    category_correct: int = 0
    urgency_correct: int = 0
    critical_expected: int = 0
    critical_found: int = 0
    critical_predicted: int = 0
    missed_critical: list[str] = field(default_factory=list)
    false_critical: list[str] = field(default_factory=list)
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    kind_confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    urgency_confusion: Counter[tuple[str, str]] = field(default_factory=Counter)

    @staticmethod
    def _ratio(part: int, whole: int) -> float:
        return part / whole if whole else 1.0

    @property
    def kind_accuracy(self) -> float:
        return self._ratio(self.kind_correct, self.items)

    @property
    def category_accuracy(self) -> float:
        return self._ratio(self.category_correct, self.items)

    @property
    def urgency_accuracy(self) -> float:
        return self._ratio(self.urgency_correct, self.items)

    @property
    def critical_recall(self) -> float:
        return self._ratio(self.critical_found, self.critical_expected)

    @property
    def critical_precision(self) -> float:
        return self._ratio(self.critical_found, self.critical_predicted)

    def render(self, confusion_rows: int = 8) -> str:
        def line(label: str, value: float, part: int, whole: int) -> str:
            return f"{label + ':':<20}{value:.3f} ({part}/{whole})"

        out = [
            f"{'items:':<20}{self.items}",
            line("kind accuracy", self.kind_accuracy, self.kind_correct, self.items),
            line("category accuracy", self.category_accuracy, self.category_correct, self.items),
            line("urgency accuracy", self.urgency_accuracy, self.urgency_correct, self.items),
            line(
                "critical recall",
                self.critical_recall,
                self.critical_found,
                self.critical_expected,
            ),
            line(
                "critical precision",
                self.critical_precision,
                self.critical_found,
                self.critical_predicted,
            ),
        ]
        if self.missed_critical:
            out.append("missed critical:")
            out += [f"  - {text}" for text in self.missed_critical]
        if self.false_critical:
            out.append("critical, labelled otherwise:")
            out += [f"  - {text}" for text in self.false_critical]
        for title, counter in (
            ("category confusion (labelled -> classified)", self.confusion),
            ("kind confusion (labelled -> classified)", self.kind_confusion),
            ("urgency confusion (labelled -> classified)", self.urgency_confusion),
        ):
            if counter:
                out.append(f"{title}:")
                out += [
                    f"  {want} -> {got}: {count}"
                    for (want, got), count in counter.most_common(confusion_rows)
                ]
        return "\n".join(out)


def evaluate(classifier: Classifier, items: Iterable[LabelledItem]) -> Evaluation:
    result = Evaluation()
    for item in items:
        got = classifier.classify(item.text)
        result.items += 1
        result.kind_correct += got.kind == item.kind
        result.category_correct += got.category == item.category
        result.urgency_correct += got.urgency == item.urgency
        if got.kind != item.kind:
            result.kind_confusion[(item.kind, got.kind)] += 1
        if got.category != item.category:
            result.confusion[(item.category, got.category)] += 1
        if got.urgency != item.urgency:
            result.urgency_confusion[(item.urgency, got.urgency)] += 1
        if item.urgency == "critical":
            result.critical_expected += 1
            if got.urgency == "critical":
                result.critical_found += 1
            else:
                result.missed_critical.append(item.text)
        if got.urgency == "critical":
            result.critical_predicted += 1
            if item.urgency != "critical":
                result.false_critical.append(item.text)
    return result
