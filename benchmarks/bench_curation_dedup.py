"""Benchmark: dedup + decontamination of 200K rows against the full evaluation suite, and the
paper's O(N²) fuzzy rule measured on a 5K subset in the same run.

    .venv/bin/python benchmarks/bench_curation_dedup.py [--rows 200000] [--subset 5000] [--seed 0]

The rows (the real MedQA/MedMCQA train splits are not available offline, so the 200K are built):
- real pool rows: HEAD-QA train/dev/test, PubMedQA PQA-L, the HuatuoGPT-o1 demo (7,963 rows);
- planted duplicates: copies of real pool rows, 1-3 per origin, each with 1-3 of the changes a
  symmetric rule must see through (whitespace, case, punctuation, option order, a one-word edit
  in questions of 12+ words);
- planted leaks: a copy of up to 8,000 evaluation items, a third each with a short (< 13 words),
  a medium (13-39; the suite has 2,306) and a long (40+) question, each with 1-3 of the changes
  real leaks show: the five above, typos, a prefix ("Question 12:"), an appended instruction line
  ("Choose the best answer."), option labels written into the options ("(a) x", "A. x", "1. x"),
  the options written into the question under it with none or placeholders ("A", "Option A") as
  options, HTML escapes ("&amp;", "&#39;", "&nbsp;") as scraped pages carry them;
  and evaluation questions of 12+ words reused with another item's options (only the question
  view can see those);
- near misses: short evaluation stems (under 10 words, such as "All of the following are true
  except") with options of clean pool rows, half with a prefix: the same stem is not the same item;
- filler: unique rows recombined from word runs of three different questions (at most half of
  each, so a filler row never holds a whole evaluation question), with four options taken from
  four other items.
Rows are shuffled, so copies come before or after their origin.

Ground truth: a dedup drop is right when the dropped row and the kept twin it names come from the
same origin (the same normalised item); drops among real rows that the real rows alone already
contain (found by a pass over them before planting) are natural duplicates, reported apart. Rows
planted for decontamination are left out of the dedup score. For decontamination only built rows
are scored: leaks and reused questions are positives, and a flagged positive is right when the
evaluation item it names is its origin, a twin of it or an item its origin contains; filler, near misses and copies of pool
rows are negatives; real rows that match the suite (all of PubMedQA: the suite holds all 1,000
PQA-L items) are reported apart. Recall is printed per change, per stem length and overall, and
for the symmetric rule alone (`containment: null`, the rule before containment was added) beside
the full stage.

Baseline, measured in the same run on the 5K subset: the reference rule (`fuzz.ratio >= 95` on raw
text against every kept row / every evaluation item, top 5), whose cost grows with N² for dedup
and N×M for decontamination; its 200K time is extrapolated from the subset by those laws.
"""

from __future__ import annotations

import argparse
import html
import random
import re
import string
import sys
import time
from collections import Counter, defaultdict
from typing import Any

from rapidfuzz import fuzz

from m1.curation.containment import Probe, contained_share
from m1.curation.decontaminate import DecontamConfig, Decontaminate
from m1.curation.dedup import DedupConfig, Deduplicate
from m1.curation.ingest import Ingest, IngestConfig, PoolConfig
from m1.curation.sft_format import sft_prompt
from m1.curation.stage import Drop
from m1.curation.text import item_segments, item_view, question_view
from m1.data.items import OPTION_LETTERS
from m1.data.suite import SUITE_FILE_NAME, load_suite, shared_data_dir

WORD_EDIT_MIN_WORDS = 12
THRESHOLD = DedupConfig().threshold  # the similarity rule both methods apply (fuzz.ratio / 100)
DECONTAM = DecontamConfig()
CONTAINMENT = DECONTAM.containment
# Changes a symmetric rule sees through (pool copies, dedup) and those it does not (leaks).
SYMMETRIC_CHANGES = ("whitespace", "case", "punctuation", "option order", "word edit")
LEAK_CHANGES = (*SYMMETRIC_CHANGES, "typo", "prefix", "instruction", "labels", "options in question", "html")
# The order changes are made in: typos touch the original words only, options are written into the
# question after they are changed, text is added around all that, and escaping comes last.
CHANGE_ORDER = {"typo": 0, "labels": 2, "options in question": 3, "prefix": 4, "instruction": 4, "html": 5}
LABELS = ("({letter}) ", "{letter}) ", "{LETTER}. ", "{number}. ")
PREFIXES = ("Question: ", "Q: ", "Q{n}. ", "Question {n}) ", "{n}. ", "Answer the following question.\n",
            "The following is a multiple choice question about medicine.\n", "Medical entrance exam: ",
            "Read the question and choose the correct option. ")
INSTRUCTIONS = ("\nChoose the best answer.", "\nChoose the correct option.", " Select one.",
                "\nAnswer with the letter of the correct option.", "\nGive the single best answer.",
                "\nAnswer:", " (choose one)")
STEM_LENGTHS = (("short", 0), ("medium", CONTAINMENT.min_words), ("long", 40))  # by normalised words
DECONTAM_KINDS = ("eval copy", "eval question")  # planted for decontamination: positives
NEAR_MISS_MAX_WORDS = DECONTAM.question_min_words  # under this, a question alone is never a match


def stem_length(question: str) -> str:
    words = len(question_view(question).split())
    return [name for name, least in STEM_LENGTHS if words >= least][-1]


# --------------------------------------------------------------------------- building the rows


def add_typo(rng: random.Random, word: str) -> str:
    """One slip of the keyboard inside a word of 4+ letters: swapped, dropped, doubled or wrong letter."""
    at = rng.randrange(1, len(word) - 2)
    action = rng.choice(["swap", "drop", "double", "replace"])
    if action == "swap":
        return word[:at] + word[at + 1] + word[at] + word[at + 2:]
    if action == "drop":
        return word[:at] + word[at + 1:]
    if action == "double":
        return word[:at] + word[at] + word[at:]
    return word[:at] + rng.choice(string.ascii_lowercase.replace(word[at].lower(), "")) + word[at + 1:]


def perturb(rng: random.Random, question: str, options: dict[str, str], answer_idx: str,
            vocabulary: list[str], changes: tuple[str, ...]) -> tuple[str, dict[str, str], str, list[str]]:
    """A copy changed in 1-3 of `changes`, as a human or a scraper would change it; returns what was done."""
    kinds = [kind for kind in changes
             if (kind != "word edit" or len(question.split()) >= WORD_EDIT_MIN_WORDS)
             and (kind != "typo" or any(len(word) >= 4 and word.isalpha() for word in question.split(" ")))]
    chosen = rng.sample(kinds, rng.randint(1, min(3, len(kinds))))
    for kind in sorted(chosen, key=lambda kind: CHANGE_ORDER.get(kind, 1)):
        if kind == "whitespace":
            question = "  " + re.sub(r" ", lambda _: rng.choice([" ", "  ", "\n", " "]), question) + " \n"
        elif kind == "case":
            question = rng.choice([str.upper, str.lower, str.title])(question)
            options = {letter: text.lower() for letter, text in options.items()}
        elif kind == "punctuation":
            question = re.sub(r"[,;:?.]", lambda m: rng.choice(["", " ", m.group(0) * 2, ";"]), question)
        elif kind == "option order":
            texts = list(options.values())
            answer_text = options[answer_idx]
            rng.shuffle(texts)
            options = dict(zip(OPTION_LETTERS, texts))
            answer_idx = next(letter for letter, text in options.items() if text == answer_text)
        elif kind == "typo":  # 1-2 in a short question, 1-3 in a longer one
            words = question.split(" ")
            eligible = [at for at, word in enumerate(words) if len(word) >= 4 and word.isalpha()]
            most = 2 if len(words) < CONTAINMENT.min_words else 3
            for at in rng.sample(eligible, min(len(eligible), rng.randint(1, most))):
                words[at] = add_typo(rng, words[at])
            question = " ".join(words)
        elif kind == "prefix":
            question = rng.choice(PREFIXES).format(n=rng.randint(1, 200)) + question
        elif kind == "instruction":
            question = question + rng.choice(INSTRUCTIONS)
        elif kind == "labels":
            label = rng.choice(LABELS)
            options = {letter: label.format(letter=letter.lower(), LETTER=letter, number=at + 1) + text
                       for at, (letter, text) in enumerate(options.items())}
        elif kind == "options in question":
            question += "\n" + "\n".join(f"{letter}. {text}" for letter, text in options.items())
            options = rng.choice([{}, {letter: letter for letter in options},
                                  {letter: f"Option {letter}" for letter in options}])
        elif kind == "html":
            question = html.escape(question).replace(" ", "&nbsp;", rng.randint(0, 3))
            options = {letter: html.escape(text) for letter, text in options.items()}
        else:  # one word replaced, deleted or repeated
            words = question.split(" ")
            at = rng.randrange(len(words))
            action = rng.choice(["replace", "delete", "repeat"])
            if action == "replace":
                words[at] = rng.choice(vocabulary)
            elif action == "delete" and len(words) > 1:
                del words[at]
            else:
                words.insert(at, words[at])
            question = " ".join(words)
    return question, options, answer_idx, chosen


def view_of(row: dict) -> str:
    return item_view(row["question"], row["options"])


def make_row(uid: str, source: str, question: str, options: dict[str, str], answer_idx: str, **tags: Any) -> dict:
    return {"uid": uid, "source": source, "question": question, "options": options, "answer_idx": answer_idx,
            "answer": options.get(answer_idx, ""), "prompt": sft_prompt(question, options), "metadata": {}, **tags}


def real_rows(shared) -> list[dict]:
    pools = shared / "pools"
    files = [pools / f"headqa_en/{split}_HEAD_EN.json" for split in ("train", "dev", "test")]
    files += [pools / "pubmedqa/ori_pqal.json", pools / "huatuo_demo/demo_data.json"]
    stage = Ingest(IngestConfig(pools=[PoolConfig(name=f"pool{i}", path=str(p)) for i, p in enumerate(files)],
                                drop_image_questions=False))
    kept = [o for o in stage.process_all(stage.candidates()) if not isinstance(o, Drop)]
    return [row | {"kind": "real", "origin": row["uid"]} for row in kept]


def filler_rows(rng: random.Random, count: int, questions: list[list[str]], options: list[str]) -> list[dict]:
    rows, seen = [], set()
    while len(rows) < count:
        parts = []
        for words in rng.sample(questions, 3):
            length = rng.randint(min(6, len(words) // 2), min(16, len(words) // 2))
            start = rng.randrange(len(words) - length + 1)
            parts.append(" ".join(words[start:start + length]))
        question = " ".join(part for part in parts if part).rstrip("?.:") + "?"
        row_options = dict(zip("ABCD", rng.sample(options, 4)))
        view = item_view(question, row_options)
        if view in seen:
            continue
        seen.add(view)
        uid = f"filler-{len(rows)}"
        rows.append(make_row(uid, "Filler", question, row_options, "A", kind="filler", origin=uid))
    return rows


def other_options(rng: random.Random, item, eval_items: list) -> dict[str, str]:
    """Another evaluation item's options (not the same set: PubMedQA's are all yes/no/maybe)."""
    donor = rng.choice(eval_items)[1]
    while sorted(donor.options.values()) == sorted(item.options.values()):
        donor = rng.choice(eval_items)[1]
    return dict(zip(OPTION_LETTERS, list(donor.options.values())))


def build(shared, total: int, seed: int) -> tuple[list[dict], dict, list[dict]]:
    rng = random.Random(seed)
    real = real_rows(shared)
    suite = load_suite(shared / "eval" / SUITE_FILE_NAME)
    eval_items = [(f"{source}/{item.uid}", item) for source, items in suite.items() for item in items]
    vocabulary = sorted({w for row in real for w in row["question"].split() if w.isalpha() and len(w) > 3})

    # Natural structure of the real rows, found before anything is planted.
    natural_dups = Deduplicate(DedupConfig()).process_all(real)
    natural_matches = [(row["uid"], o.detail.split(" ")[0]) for row, o in
                       zip(real, decontaminator().process_batch(real)) if isinstance(o, Drop)]
    natural_contaminated = {uid for uid, _ in natural_matches}
    # The suite's own near-duplicates (MedBullets op4/op5 share their stems, GPQA repeats questions).
    eval_rows = [make_row(key, "Eval", item.question, item.options, item.answer_idx) for key, item in eval_items]
    eval_twins = [(row["uid"], o.detail.split()[4]) for row, o in
                  zip(eval_rows, Deduplicate(DedupConfig()).process_all(eval_rows)) if isinstance(o, Drop)]
    planted: list[dict] = []
    copyable = [row for row in real if row["uid"] not in natural_contaminated]
    for origin in rng.sample(copyable, min(len(copyable), 6000)):
        for copy in range(rng.randint(1, 3)):
            q, o, a, kinds = perturb(rng, origin["question"], origin["options"], origin["answer_idx"], vocabulary,
                                     SYMMETRIC_CHANGES)
            planted.append(make_row(f"{origin['uid']}~{copy}", origin["source"], q, o, a, kind="pool copy",
                                    origin=origin["uid"], perturbations=kinds))
    by_length: dict[str, list] = defaultdict(list)
    for key, item in eval_items:
        by_length[stem_length(item.question)].append((key, item))
    for name, _ in STEM_LENGTHS:
        for key, item in rng.sample(by_length[name], min(len(by_length[name]), 8000 // len(STEM_LENGTHS))):
            q, o, a, kinds = perturb(rng, item.question, item.options, item.answer_idx, vocabulary, LEAK_CHANGES)
            planted.append(make_row(f"eval-copy-{key}", "Planted", q, o, a, kind="eval copy", origin=key,
                                    perturbations=kinds, stem=name))
    long_questions = [(key, item) for key, item in eval_items if len(item.question.split()) >= WORD_EDIT_MIN_WORDS]
    for key, item in rng.sample(long_questions, 1000):
        options = other_options(rng, item, eval_items)
        planted.append(make_row(f"eval-question-{key}", "Planted", item.question, options, "A", kind="eval question",
                                origin=key, perturbations=["other options"], stem=stem_length(item.question)))
    # Near misses take four options of four clean pool rows: another evaluation item's options could
    # be those of an item with the same generic stem (the row would be that item), and one pool row's
    # options would make the row a near duplicate of that pool row.
    # Short in words as written and as normalised ("1,1,1,1 Tetra-floroethylene ..." is 9 words written
    # and 13 normalised, enough for containment to look for the question alone: not a near miss).
    short_stems = [(key, item) for key, item in eval_items
                   if max(len(item.question.split()), len(question_view(item.question).split())) < NEAR_MISS_MAX_WORDS]
    clean_options = sorted({text for row in copyable for text in row["options"].values() if text})
    for key, item in rng.sample(short_stems, 1000):
        question = item.question if rng.random() < 0.5 else rng.choice(PREFIXES).format(n=7) + item.question
        options = dict(zip("ABCD", rng.sample(clean_options, 4)))
        planted.append(make_row(f"near-miss-{key}", "Planted", question, options, "A",
                                kind="near miss", origin=f"near-miss-{key}", stem="short"))

    texts = [row["question"].split() for row in real] + [item.question.split() for _, item in eval_items]
    option_texts = sorted({t for row in real for t in row["options"].values() if t} |
                          {t for _, item in eval_items for t in item.options.values() if t})
    filler = filler_rows(rng, total - len(real) - len(planted), [words for words in texts if len(words) >= 2],
                         option_texts)
    rows = real + planted + filler
    rng.shuffle(rows)
    natural = {"dup_pairs": [(row["uid"], o.detail.split()[4]) for row, o in zip(real, natural_dups)
                             if isinstance(o, Drop)],
               "eval_pairs": natural_matches, "eval_twins": eval_twins, "contaminated": natural_contaminated}
    return rows, natural, [{"key": key, "item": item} for key, item in eval_items]


def decontaminator(method: str = "minhash", containment: bool = True) -> Decontaminate:
    config = DecontamConfig(method=method)
    return Decontaminate(config if containment else config.model_copy(update={"containment": None}))


# --------------------------------------------------------------------------- scoring


class Groups:
    """Origins of rows, merged where the real rows are natural duplicates of each other."""

    def __init__(self, rows: list[dict], natural: dict[str, Any], eval_views: dict[str, str]):
        self.parent: dict[str, str] = {}
        # Copies of evaluation items that are the same item (GPQA repeats each question 5 times)
        # are one origin, and so is a real row with an evaluation item it already matched.
        self.eval_views = eval_views
        for a, b in natural["dup_pairs"]:
            self.union(a, b)
        for uid, key in natural["eval_pairs"]:
            self.union(uid, "view:" + eval_views[key])
        for key, twin in natural["eval_twins"]:
            self.union("view:" + eval_views[key], "view:" + eval_views[twin])
        self.of = {row["uid"]: self.find(self._origin(row)) for row in rows}

    def _origin(self, row: dict) -> str:
        if row["kind"] == "eval copy":
            return "view:" + self.eval_views[row["origin"]]
        return row["uid"] if row["kind"] == "eval question" else row["origin"]

    def of_eval(self, key: str) -> str:
        return self.find("view:" + self.eval_views[key])

    def find(self, key: str) -> str:
        while self.parent.get(key, key) != key:
            key = self.parent[key]
        return key

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def score_dedup(rows: list[dict], outcomes: list, groups: Groups, real_uids: set[str]) -> dict[str, Any]:
    # Rows planted for decontamination test that stage; whether a leak is a duplicate of another
    # depends on what it adds to its origin, so dedup leaves them out.
    reused = {row["uid"] for row in rows if row["kind"] in DECONTAM_KINDS}
    members = Counter(groups.of[row["uid"]] for row in rows if row["uid"] not in reused)
    planted_groups = {groups.of[row["uid"]] for row in rows if row["kind"] == "pool copy"}
    expected = sum(members[g] - 1 for g in planted_groups)
    right = wrong = natural = skipped = 0
    for row, outcome in zip(rows, outcomes):
        if not isinstance(outcome, Drop):
            continue
        twin = outcome.detail.split()[4]
        if row["uid"] in reused or twin in reused:
            skipped += 1
        elif groups.of[row["uid"]] == groups.of[twin]:
            if groups.of[row["uid"]] in planted_groups:
                right += 1
            else:
                natural += 1
        elif row["uid"] in real_uids and twin in real_uids:
            natural += 1
        else:
            wrong += 1
    # Each copy kept beside an earlier kept member of its group is a miss: either the copy is
    # below the similarity rule itself (a word edit in a short item), or the method failed to find it.
    first_kept: dict[str, dict] = {}
    below_rule = not_found = 0
    for row, outcome in zip(rows, outcomes):
        if isinstance(outcome, Drop) or row["uid"] in reused:
            continue
        group = groups.of[row["uid"]]
        if group not in first_kept:
            first_kept[group] = row
        elif group in planted_groups:
            similarity = fuzz.ratio(view_of(row), view_of(first_kept[group])) / 100
            below_rule += similarity < THRESHOLD
            not_found += similarity >= THRESHOLD
    return {"expected": expected, "right": right, "wrong": wrong, "natural": natural, "reused": skipped,
            "below_rule": below_rule, "not_found": not_found,
            "recall": right / expected if expected else 1.0,
            "precision": right / (right + wrong) if right + wrong else 1.0}


NAMED = re.compile(r"(\S+) \((?:question\+options|question) view")


def within_rules(row: dict, origin, containment: bool) -> bool:
    """Whether the stage's rules, applied to the row and its origin alone, call it a match."""
    if row["kind"] == "eval question" or len(origin.question.split()) >= DECONTAM.question_min_words:
        if fuzz.ratio(question_view(row["question"]), question_view(origin.question)) / 100 >= THRESHOLD:
            return True
    if fuzz.ratio(view_of(row), item_view(origin.question, origin.options)) / 100 >= THRESHOLD:
        return True
    if not containment:
        return False
    mine = item_segments(row["question"], row["options"])
    probe = Probe.of(mine[0], mine[1:], CONTAINMENT.ngram_words)
    question, *options = item_segments(origin.question, origin.options)
    views = [options] + ([[]] if len(question.split()) >= CONTAINMENT.min_words else [])
    return any(contained_share(question, view, probe, CONTAINMENT) >= CONTAINMENT.threshold
               for view in views)


def contains(item, other) -> bool:
    """Whether an evaluation item holds another by the containment rule (the suite has such pairs)."""
    question, *options = item_segments(item.question, item.options)
    other_question, *other_options = item_segments(other.question, other.options)
    probe = Probe.of(question, options, CONTAINMENT.ngram_words)
    return contained_share(other_question, other_options, probe, CONTAINMENT) >= CONTAINMENT.threshold


def rate(hits: int, total: int) -> float:
    return hits / total if total else 1.0


def score_decontam(rows: list[dict], outcomes: list, natural: set[str], eval_by_key: dict[str, Any],
                   groups: Groups, containment: bool = True) -> dict[str, Any]:
    scored = [(row, o) for row, o in zip(rows, outcomes) if row["kind"] != "real"]
    positives = [row for row, _ in scored if row["kind"] in DECONTAM_KINDS]

    def right(row: dict, outcome: Drop) -> bool:
        """A flag is right when the item it names is the row's origin, a twin of it, an item with
        the same question (for the question view), or an item the origin itself contains."""
        origin = eval_by_key[row["origin"]]
        return any(groups.of_eval(key) == groups.of_eval(row["origin"]) or
                   question_view(eval_by_key[key].question) == question_view(origin.question) or
                   contains(origin, eval_by_key[key]) for key in NAMED.findall(outcome.detail))

    verdicts: dict[str, str] = {}  # uid -> "found", "wrong item", "missed", "false"
    for row, outcome in scored:
        flagged = isinstance(outcome, Drop)
        if row["kind"] in DECONTAM_KINDS:
            verdicts[row["uid"]] = ("found" if right(row, outcome) else "wrong item") if flagged else "missed"
        elif flagged:
            verdicts[row["uid"]] = "false"
    missed = Counter()
    for row in positives:
        if verdicts[row["uid"]] == "missed":
            inside = within_rules(row, eval_by_key[row["origin"]], containment)
            missed["not found" if inside else "below the rules"] += 1

    def summary(group: list[dict], negatives: int = 0) -> dict[str, Any]:
        counts = Counter(verdicts.get(row["uid"]) for row in group)
        flagged = counts["found"] + counts["wrong item"] + negatives
        return {"n": len(group), "found": counts["found"], "recall": rate(counts["found"], len(group)),
                "precision": rate(counts["found"], flagged)}

    false = sum(verdict == "false" for verdict in verdicts.values())
    false_by_kind = Counter(row["kind"] for row, _ in scored if verdicts.get(row["uid"]) == "false")
    by_change = {kind: summary([row for row in positives if row["kind"] == "eval copy"
                                and kind in row["perturbations"]]) for kind in LEAK_CHANGES}
    by_change["other options"] = summary([row for row in positives if row["kind"] == "eval question"])
    by_change["2-3 changes"] = summary([row for row in positives if len(row.get("perturbations", [])) > 1])
    near_misses = [row for row, _ in scored if row["kind"] == "near miss"]
    by_length = {name: summary([row for row in positives if row["stem"] == name],
                               negatives=false_by_kind["near miss"] if name == "short" else 0)
                 for name, _ in STEM_LENGTHS}
    real_flagged = Counter(row["source"] for row, o in zip(rows, outcomes)
                           if row["kind"] == "real" and isinstance(o, Drop))
    overall = summary(positives, negatives=false)
    return {"positives": len(positives), "found": overall["found"], "false": false,
            "false_by_kind": dict(false_by_kind), "near_misses": len(near_misses),
            "wrong_item": sum(verdict == "wrong item" for verdict in verdicts.values()),
            "recall": overall["recall"], "precision": overall["precision"],
            "by_change": by_change, "by_length": by_length, "missed": dict(missed),
            "real_flagged": dict(real_flagged), "real_expected": len(natural & {row["uid"] for row in rows})}


def subset(rows: list[dict], size: int, seed: int) -> list[dict]:
    """About half whole duplicate groups and evaluation copies, the rest filler and real rows."""
    rng = random.Random(seed)
    by_origin: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_origin[row["origin"]].append(row)
    grouped = [group for group in by_origin.values() if len(group) > 1]
    rng.shuffle(grouped)
    chosen: list[dict] = []
    for group in grouped:
        if len(chosen) + len(group) > size * 0.4:
            break
        chosen += group
    taken = {row["uid"] for row in chosen}
    contaminated = [row for row in rows if row["kind"] in DECONTAM_KINDS and row["uid"] not in taken]
    taken |= {row["uid"] for row in rng.sample(contaminated, int(size * 0.15))}
    rest = [row for row in rows if row["uid"] not in taken and row["kind"] in ("filler", "real", "near miss")]
    taken |= {row["uid"] for row in rng.sample(rest, size - len(taken))}
    return [row for row in rows if row["uid"] in taken]  # in the shuffled order of the whole set


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def run_decontam(stage: Decontaminate, rows: list[dict]) -> list:
    outcomes = []
    for start in range(0, len(rows), 2048):
        outcomes += stage.process_batch(rows[start:start + 2048])
    return outcomes


def describe(name: str, dedup: dict | None, decontam: dict) -> None:
    if dedup is not None:
        print(f"  {name:<9} dedup {dedup['recall']:.4f} recall / {dedup['precision']:.4f} precision "
              f"({dedup['right']:,} of {dedup['expected']:,} planted duplicates dropped, {dedup['wrong']:,} wrong "
              f"drops; misses: {dedup['below_rule']:,} below the {THRESHOLD} rule itself, {dedup['not_found']:,} "
              f"not found, {dedup['expected'] - dedup['right'] - dedup['below_rule'] - dedup['not_found']:,} "
              f"dropped as twins of leaks; {dedup['natural']:,} natural, {dedup['reused']:,} drops involving leaks)")
    print(f"  {'':<9} decontamination {decontam['recall']:.4f} recall / {decontam['precision']:.4f} precision "
          f"({decontam['found']:,} of {decontam['positives']:,} planted found, {decontam['wrong_item']:,} naming "
          f"another item, {decontam['false']:,} false {decontam['false_by_kind'] or ''}; misses: "
          f"{decontam['missed'].get('below the rules', 0):,} below the rules, "
          f"{decontam['missed'].get('not found', 0):,} not found)")


def describe_breakdown(decontam: dict) -> None:
    for title, table in (("per change", decontam["by_change"]), ("per stem length", decontam["by_length"])):
        cells = [f"{name} {cell['recall']:.4f}/{cell['precision']:.4f} (n={cell['n']:,})"
                 for name, cell in table.items()]
        print(f"    recall/precision {title}: " + ", ".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--subset", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shared = shared_data_dir()
    if shared is None:
        print("skipped: the shared data was not found (put it at ../shared/data or set M1_SHARED_DATA)")
        return 0

    (rows, natural, eval_items), seconds = timed(build, shared, args.rows, args.seed)
    kinds = Counter(row["kind"] for row in rows)
    print(f"{len(rows):,} rows built in {seconds:.0f} s: " + ", ".join(f"{k} {n:,}" for k, n in kinds.most_common()))
    print(f"natural structure: real rows {len(natural['dup_pairs'])} duplicate pairs and "
          f"{len(natural['contaminated'])} rows matching the suite; {len(eval_items):,} evaluation items "
          f"with {len(natural['eval_twins'])} duplicates among themselves")
    eval_by_key = {entry["key"]: entry["item"] for entry in eval_items}
    eval_views = {key: item_view(item.question, item.options) for key, item in eval_by_key.items()}
    real_uids = {row["uid"] for row in rows if row["kind"] == "real"}
    groups = Groups(rows, natural, eval_views)
    changes = Counter(k for row in rows if row["kind"] in DECONTAM_KINDS for k in row["perturbations"])
    lengths = Counter(row["stem"] for row in rows if row["kind"] in DECONTAM_KINDS)
    print("leaks planted: " + ", ".join(f"{k} {n:,}" for k, n in changes.most_common()) +
          "; by stem length: " + ", ".join(f"{name} {lengths[name]:,}" for name, _ in STEM_LENGTHS))

    print(f"\nminhash, all {len(rows):,} rows (2 cores, one process):")
    dedup_out, dedup_s = timed(Deduplicate(DedupConfig()).process_all, rows)
    decontam_out, decontam_s = timed(run_decontam, decontaminator(), rows)
    dedup_score = score_dedup(rows, dedup_out, groups, real_uids)
    decontam_score = score_decontam(rows, decontam_out, natural["contaminated"], eval_by_key, groups)
    print(f"  wall time: dedup {dedup_s:.1f} s + decontamination {decontam_s:.1f} s "
          f"(suite index included) = {dedup_s + decontam_s:.1f} s")
    describe("", dedup_score, decontam_score)
    describe_breakdown(decontam_score)
    print(f"  real rows matching the suite: {decontam_score['real_flagged']} "
          f"(found before planting: {decontam_score['real_expected']})")
    symmetric_out, symmetric_s = timed(run_decontam, decontaminator(containment=False), rows)
    symmetric = score_decontam(rows, symmetric_out, natural["contaminated"], eval_by_key, groups, containment=False)
    print(f"  the symmetric rule alone (containment: null), {symmetric_s:.1f} s:")
    describe("", None, symmetric)
    describe_breakdown(symmetric)

    small = subset(rows, args.subset, args.seed)
    print(f"\nsubset of {len(small):,} rows ({dict(Counter(row['kind'] for row in small))}):")
    results = {}
    for method in ("minhash", "reference"):
        (d_out, d_s) = timed(Deduplicate(DedupConfig(method=method)).process_all, small)
        # The reference is the paper's rule alone; minhash runs as the stage does by default.
        (c_out, c_s) = timed(run_decontam, decontaminator(method, containment=method == "minhash"), small)
        results[method] = (d_s, c_s)
        print(f"  {method:<9} dedup {d_s:.1f} s, decontamination {c_s:.1f} s")
        describe(method, score_dedup(small, d_out, groups, real_uids),
                 score_decontam(small, c_out, natural["contaminated"], eval_by_key, groups,
                                containment=method == "minhash"))

    minhash_small, reference_small = (sum(results[m]) for m in ("minhash", "reference"))
    print(f"  same {len(small):,} rows: reference {reference_small:.1f} s, minhash {minhash_small:.1f} s "
          f"({reference_small / minhash_small:.1f}x; minhash's time here is mostly indexing the suite)")

    scale = len(rows) / len(small)
    ref_dedup, ref_decontam = results["reference"]
    extrapolated = ref_dedup * scale ** 2 + ref_decontam * scale
    print(f"\nreference extrapolated to {len(rows):,} rows: dedup {ref_dedup:.1f} s x {scale:.0f}² "
          f"(all pairs) + decontamination {ref_decontam:.1f} s x {scale:.0f} (rows x suite) "
          f"= {extrapolated:,.0f} s ({extrapolated / 3600:.1f} h)")
    print(f"minhash measured at {len(rows):,} rows: {dedup_s + decontam_s:.1f} s -> "
          f"{extrapolated / (dedup_s + decontam_s):.0f}x faster than the extrapolated reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
