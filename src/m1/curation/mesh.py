"""The domain rubric: the 76 MeSH topical qualifiers, reading a code out of a model's reply, and
a similarity fallback for when no code can be read.

    qualifiers = load_qualifiers()                  # shared data's mesh/qualifier_scope_note.tsv
    rubric = rubric_text(qualifiers)                # "00 Abnormalities: Used with organs for …" × 76
    parse_code("… so the best fit is Diagnosis.\\nCode: 20", qualifiers)   # Qualifier 20 Diagnosis
    ScopeNoteIndex(qualifiers).best("Which drug is first-line for …")      # closest scope note

Codes 00–75 follow the file's (alphabetical) order, as in the paper: 20 Diagnosis, 24 Drug Therapy,
50 Pathology.

Reading a code. The reference took the reply's last two characters, so a reply ending "in 2020"
became 20 (Deficiency). Here a number counts only where it stands as a code, checked in this order,
the last occurrence winning within each rule:
1. written as a code: `Code: 20`, `code is 20`, `\\boxed{20}`, `Answer: 20`;
2. paired with its own qualifier's name: `20 Diagnosis`, `20. Diagnosis`, `Diagnosis (20)`;
3. the reply's last word is a two-digit code (`… Diagnosis.\\n\\n**20**`);
4. a qualifier's name, in the last line that names one (the longest name wins where names nest,
   so "Drug Therapy" is not read as "Therapy").
Numbers inside longer numbers, decimals or words ("2020", "3.20", "20-year-old") never count.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from m1.data.errors import DataError
from m1.data.suite import shared_data_dir

RUBRIC_FILE = Path("mesh") / "qualifier_scope_note.tsv"
N_QUALIFIERS = 76


@dataclass(frozen=True)
class Qualifier:
    code: str  # "00" … "75"
    name: str
    abbreviation: str
    scope_note: str


def default_rubric_path() -> Path:
    found = shared_data_dir()
    if found is None or not (found / RUBRIC_FILE).exists():
        raise DataError.at(RUBRIC_FILE, "", "", "the MeSH qualifier rubric was not found",
                           "put the shared data folder at ../shared/data, set M1_SHARED_DATA, "
                           "or set rubric_path in the classify config")
    return found / RUBRIC_FILE


def load_qualifiers(path: str | Path | None = None) -> list[Qualifier]:
    """The 76 qualifiers, coded in file order; a wrong file says what is wrong with it."""
    path = Path(path) if path is not None else default_rubric_path()
    if not path.exists():
        raise DataError.at(path, "", "", "MeSH qualifier rubric not found",
                           "point rubric_path at mesh/qualifier_scope_note.tsv from the shared data")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    qualifiers = []
    for number, row in enumerate(rows):
        for column in ("Name", "Scope Notes"):
            if not (row.get(column) or "").strip():
                raise DataError.at(path, number + 2, column, f"missing {column}",
                                   "the rubric needs columns Name, Abbreviation, Short Form, Scope Notes")
        qualifiers.append(Qualifier(f"{number:02d}", row["Name"].strip(), (row.get("Abbreviation") or "").strip(),
                                    row["Scope Notes"].strip()))
    if len(qualifiers) != N_QUALIFIERS:
        raise DataError.at(path, "", "", f"expected {N_QUALIFIERS} qualifiers, found {len(qualifiers)}",
                           "use the unmodified qualifier_scope_note.tsv")
    return qualifiers


def rubric_text(qualifiers: list[Qualifier]) -> str:
    return "\n".join(f"{q.code} {q.name}: {q.scope_note}" for q in qualifiers)


# A two-digit number standing alone: not inside a longer number, a decimal, or a word/hyphen compound.
_CODE = r"(?<![\w.,\-])(\d{2})(?![\w\-]|[.,]\d)"
_EXPLICIT = re.compile(r"(?:\bcode|\banswer|\bcategory|\bqualifier|\bdomain)\b[^\S\n]*(?:is|:|=|-|number)?"
                       r"[^\S\n]*[*_`\"'(\[]*[^\S\n]*" + _CODE + r"|\\boxed\{\s*(\d{2})\s*\}", re.IGNORECASE)
_LAST_WORD = re.compile(_CODE + r"[\s*_`\"')\].!]*$")


def _name_pattern(name: str) -> str:
    # "&" is also written "and"; whitespace may vary.
    words = [re.escape(word) for word in name.replace("&", " & ").split()]
    return r"\s+".join(r"(?:&|and)" if word == "\\&" else word for word in words)


def parse_code(reply: str, qualifiers: list[Qualifier]) -> Qualifier | None:
    """The qualifier a reply names as its answer, or None (see the module docstring for the rules)."""
    by_code = {q.code: q for q in qualifiers}
    text = reply or ""

    explicit = [m.group(1) or m.group(2) for m in _EXPLICIT.finditer(text)]
    explicit = [code for code in explicit if code in by_code]
    if explicit:
        return by_code[explicit[-1]]

    paired: list[tuple[int, str]] = []
    for q in qualifiers:
        name = _name_pattern(q.name)
        pattern = rf"(?<![\w.,\-]){q.code}\b[^\S\n]*[.:)\-–]?[^\S\n]*\**{name}\b|\b{name}\**[^\S\n]*[(\[]{q.code}[)\]]"
        paired += [(m.start(), q.code) for m in re.finditer(pattern, text, re.IGNORECASE)]
    if paired:
        return by_code[max(paired)[1]]

    last = _LAST_WORD.search(text.rstrip())
    if last and last.group(1) in by_code:
        return by_code[last.group(1)]

    for line in reversed([line for line in text.splitlines() if line.strip()]):
        named = _names_in(line, qualifiers)
        if named:
            return named[-1]
    return None


def _names_in(line: str, qualifiers: list[Qualifier]) -> list[Qualifier]:
    """Qualifier names in a line, in order; a name inside a longer matched name does not count."""
    spans: list[tuple[int, int, Qualifier]] = []
    for q in sorted(qualifiers, key=lambda q: -len(q.name)):
        for m in re.finditer(rf"\b{_name_pattern(q.name)}\b", line, re.IGNORECASE):
            if not any(start <= m.start() and m.end() <= end for start, end, _ in spans):
                spans.append((m.start(), m.end(), q))
    return [q for _, _, q in sorted(spans, key=lambda span: span[0])]


_STOPWORDS = frozenset("""a an and are as at be by for from has have in is it its of on or that the this to used
use with which when who what also other such these those their than then there into not no may can""".split())


def _tokens(text: str) -> list[str]:
    # A crude suffix strip lets "diagnostic" meet "diagnosis" and "drugs" meet "drug".
    words = re.findall(r"[a-z]+", text.lower())
    return [re.sub(r"(ies|es|s|ic|al|ing|ed|y)$", "", w) or w for w in words if w not in _STOPWORDS and len(w) > 2]


class ScopeNoteIndex:
    """TF-IDF cosine similarity between a question and each qualifier's name and scope note.

    A weak classifier, used only when the model gives no readable code; its picks are flagged.
    """

    def __init__(self, qualifiers: list[Qualifier]):
        self.qualifiers = qualifiers
        # The name counts twice: it is the most specific description a qualifier has.
        documents = [Counter(_tokens(f"{q.name} {q.name} {q.scope_note}")) for q in qualifiers]
        frequency = Counter(token for doc in documents for token in doc)
        self.idf = {token: math.log((1 + len(documents)) / (1 + n)) + 1 for token, n in frequency.items()}
        self.vectors = [self._weigh(doc) for doc in documents]

    def _weigh(self, counts: Counter) -> dict[str, float]:
        vector = {t: (1 + math.log(n)) * self.idf[t] for t, n in counts.items() if t in self.idf}
        norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
        return {t: v / norm for t, v in vector.items()}

    def scores(self, text: str) -> list[float]:
        query = self._weigh(Counter(_tokens(text)))
        return [sum(weight * vector.get(t, 0.0) for t, weight in query.items()) for vector in self.vectors]

    def best(self, text: str) -> Qualifier:
        """The most similar qualifier; ties (and an empty query) go to the lower code, deterministically."""
        scores = self.scores(text)
        return self.qualifiers[max(range(len(scores)), key=lambda i: (scores[i], -i))]
