"""Kind, category and urgency of a complaint from its text: the hospital's rules, then defaults.

The rule classifier works offline and on the standard library only; the phrase tables are built
once, when the classifier is constructed (once per Lambda process). How phrases match is described
in docs/tune-the-classifier.md; the rules are data (`sotong/complaints/rules/shipped.yaml`).
Urgency is the most severe signal found; a critical signal is
never outvoted (it also decides the category among its own), since a critical complaint alerts a
person at once and missing one costs more than a false alarm.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sotong.complaints import rulebook
from sotong.complaints.classification import SEVERITY, Classification
from sotong.complaints.rulebook import Rule, Rulebook
from sotong.config.schema import KINDS

if TYPE_CHECKING:
    from sotong.config.schema import HospitalConfig

HOSPITAL_WEIGHT = 2.0  # a hospital's own rule counts twice a shipped one for the category
DEFAULT_WEIGHT = 1.0
HINT_WEIGHT = 1.5  # the category the patient picked: beats one weak phrase, not two
_HANGUL_FIRST, _HANGUL_LAST, _FINALS = 0xAC00, 0xD7A3, 28
_FINAL_SS, _FINAL_S = 20, 19  # the final consonants ㅆ and ㅅ
_SENTENCE_END = ".!?。…"
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))


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
    """A rule's phrase compiled for matching: normalised, without spaces, and where it may match."""

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
    """A rule compiled for matching: what it decides, its phrases, its priority and weight."""

    id: str | None
    harm: bool  # matched as a harm: stems, and precautions or absences take its urgency away
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


def _compile(
    rules: Iterable[Rule],
) -> tuple[list[_Rule], list[tuple[_Rule, list[tuple[_Phrase, ...]]]]]:
    """Phrase rules, and combinations with their groups."""
    single, together = [], []
    for rule in rules:
        priority, weight = (
            (1, HOSPITAL_WEIGHT) if rule.origin == "hospital" else (0, DEFAULT_WEIGHT)
        )
        if rule.groups:
            compiled = _Rule(rule.id, True, rule.category, rule.urgency, None, (), priority, weight)
            groups = [tuple(p for p in map(_compile_phrase, g) if p) for g in rule.groups]
            together.append((compiled, groups))
            continue
        phrases = tuple(p for p in map(_compile_phrase, rule.phrases) if p is not None)
        if phrases:
            harm = rule.harm or rule.urgency == "critical"
            single.append(
                _Rule(
                    rule.id, harm, rule.category, rule.urgency, rule.kind, phrases, priority, weight
                )
            )
    return single, together


@dataclass(frozen=True)
class _Markers:
    """Words after a critical phrase that take its urgency away (see `_negation`)."""

    absence: tuple[str, ...]
    negation: tuple[str, ...]
    visit: tuple[str, ...]
    denial: tuple[str, ...]
    potential: tuple[str, ...]
    risk_nouns: tuple[str, ...]

    @classmethod
    def of(cls, book: Rulebook) -> _Markers:
        def folded(name: str) -> tuple[str, ...]:
            return tuple(map(_fold_typos, book.markers.get(name, ())))

        return cls(
            folded("absence"),
            folded("negation"),
            folded("visit"),
            folded("denial"),
            folded("potential"),
            folded("risk_nouns"),
        )


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


_HEDGES = ("거의", "전혀", "하나도", "별로", "크게", "다행히")  # between a harm and its absence
_PARTICLES = ("", "이", "가", "은", "는", "을", "를", "도")
_ENDING_STARTS = "신셨시는은던"  # an ending's first syllable before a denial: '다치신 데는 없'
_FINAL_L = 8  # the final consonant ㄹ: '다칠', '넘어질'


def _final(char: str) -> int:
    code = ord(char) - _HANGUL_FIRST
    return code % _FINALS if 0 <= code <= _HANGUL_LAST - _HANGUL_FIRST else -1


def _negation(
    markers: _Markers, text: _Text, start: int, end: int, treated: bool = True
) -> str | None:
    """Why a critical phrase does not make the complaint critical, or None if it does.

    'purpose' for a precaution ('넘어지지 않게'), 'absence' for '출혈은 없었어요' and 'visit' for
    the reason the patient came ('열이 나서 왔는데'), unless the text tells of a treatment.
    """
    rest, following, then, fourth = text.after(end, words=3)
    tail = rest + following
    window = tail + then + fourth
    absence = markers.absence
    if tail.startswith(absence) or (following in _HEDGES and (rest + then).startswith(absence)):
        return "absence"  # '출혈은 없었어요', '출혈도 거의 없었대요'
    skip = 1 if rest[:1] in _ENDING_STARTS else 0
    if window.startswith(markers.denial) or window[skip:].startswith(markers.denial):
        return "absence"  # '넘어지진 않았지만', '다치신 데는 없었', '넘어진 건 아니고'
    if not treated and (
        (rest.endswith("서") and following.startswith(markers.visit))
        or (not rest and following.endswith("서") and then.startswith(markers.visit))  # '숨이 차서'
    ):
        return "visit"
    if any(marker in tail for marker in markers.negation):
        return "purpose"
    if window.startswith(markers.potential) and (
        window.startswith("기") or _final(text.compact[end - 1]) == _FINAL_L
    ):
        return "purpose"  # only a risk: '넘어지기 딱 좋아요', '다칠 것 같아요', '넘어질 수 있'
    if rest.startswith(markers.risk_nouns) or (
        rest in _PARTICLES and following.startswith(markers.risk_nouns)
    ):
        return "purpose"  # the harm names a risk: '낙상 위험', '낙상고위험', '감염 예방 교육'

    if text.previous_word(start) in ("안", "못") and rest.endswith(("게", "도록")):
        return "purpose"  # '안 넘어지게', '안 다치도록'
    if rest in _PARTICLES and (
        (following.endswith("지") and then.startswith(markers.negation))
        or (following in ("안", "못") and then.endswith(("게", "도록", "게끔")))
    ):
        return "purpose"  # a harm named as a noun: '욕창이 생기지 않게', '욕창 안 생기게'
    if text.previous_word(start) == "안" and not rest.endswith(("게", "도록", "까", "요?")):
        return "absence"  # '한 번도 안 넘어지셨어요'
    return None


def _first_match(
    markers: _Markers, text: _Text, rule: _Rule, group: tuple[_Phrase, ...], treated: bool
) -> _Match | None:
    """The first phrase of a `Together` group in the text that is not negated."""
    for phrase in group:
        if phrase.key not in text.compact:
            continue  # the quick test first: most phrases are not in the text at all
        for start, end in text.find(phrase, lenient=True):
            if _negation(markers, text, start, end, treated) is None:
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

    def __init__(self, hospital: HospitalConfig, book: Rulebook | None = None) -> None:
        self.labels: dict[str, str] = dict(hospital.complaints.categories)  # id -> Korean label
        self.categories: tuple[str, ...] = tuple(self.labels)
        book = book or rulebook.for_hospital(hospital)
        single, together = _compile(book.rules)
        known = set(self.categories)
        self._rules = [r for r in single if r.category is None or r.category in known]
        self._together = [(r, g) for r, g in together if r.category is None or r.category in known]
        self._markers = _Markers.of(book)
        self._after_treatment = [p for p in map(_compile_phrase, book.after_treatment) if p]
        # What to look for first, per phrase: a critical phrase is a stem (see `_Text.find`).
        self._needles = [
            (phrase.stem_key if rule.harm else phrase.key, rule, phrase)
            for rule in self._rules
            for phrase in rule.phrases
        ]

    def _matches(self, text: _Text) -> list[_Match]:
        compact = text.compact
        found = []
        for needle, rule, phrase in self._needles:
            if needle in compact:  # the quick test first: most phrases are not in the text at all
                critical = rule.harm
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
            if (
                m.rule.harm
                and urgency
                and (negation := _negation(self._markers, text, m.start, m.end, treated))
            ):
                urgency = None
                if negation != "purpose":
                    category = None
            if category or urgency or kind:
                live.append(_Match(m.start, m.end, m.rule, m.phrase, category, urgency, kind))
        for rule, groups in self._together:
            found_all = []
            for group in groups:
                if (first := _first_match(self._markers, text, rule, group, treated)) is None:
                    break  # every group must be there: no need to look at the rest
                found_all.append(first)
            else:
                live += found_all
        return live

    def classify(self, text: str, category_hint: str | None = None) -> Classification:
        matches = self._matches(_Text(text))
        urgency = "normal"
        for m in matches:
            if m.urgency and SEVERITY[m.urgency] > SEVERITY[urgency]:
                urgency = m.urgency
        by_urgency = [m for m in matches if urgency != "normal" and m.urgency == urgency]
        category, by_category = self._category(matches, by_urgency, urgency, category_hint)
        kind, by_kind = self._kind(matches)
        deciding = [*by_urgency, *by_category, *by_kind]
        matched = _unique(m.phrase.shown for m in deciding)
        ids = _unique(m.rule.id for m in deciding if m.rule.id)
        return Classification(kind, category, urgency, matched, "rules", ids)

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
