"""Benchmark: dedup + decontamination of 200K rows against the full evaluation suite, and the
paper's O(N²) fuzzy rule measured on a 5K subset in the same run.

    .venv/bin/python benchmarks/bench_curation_dedup.py [--rows 200000] [--subset 5000] [--seed 0]

The rows (the real MedQA/MedMCQA train splits are not available offline, so the 200K are built):
- real pool rows: HEAD-QA train/dev/test, PubMedQA PQA-L, the HuatuoGPT-o1 demo (7,963 rows);
- planted duplicates: copies of real pool rows, 1-3 per origin, each with 1-3 perturbations
  (whitespace, case, punctuation, option order, a one-word edit in questions of 12+ words);
- planted contamination: a perturbed copy of most evaluation items (same perturbations), and
  evaluation questions of 12+ words reused with another item's options (only the question view
  can see those);
- filler: unique rows recombined from three word runs of three different questions, with four
  options taken from four other items.
Rows are shuffled, so copies come before or after their origin.

Ground truth: a dedup drop is right when the dropped row and the kept twin it names come from the
same origin (the same normalised item); drops among real rows that the real rows alone already
contain (found by a pass over them before planting) are natural duplicates, reported apart. For
decontamination only built rows are scored: copies of evaluation items and reused questions are
positives, filler and copies of pool rows that do not match the suite are negatives; real rows
that match the suite (all of PubMedQA: the suite holds all 1,000 PQA-L items) are reported apart.

Baseline, measured in the same run on the 5K subset: the reference rule (`fuzz.ratio >= 95` on raw
text against every kept row / every evaluation item, top 5), whose cost grows with N² for dedup
and N×M for decontamination; its 200K time is extrapolated from the subset by those laws.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections import Counter, defaultdict
from typing import Any

from rapidfuzz import fuzz

from m1.curation.decontaminate import DecontamConfig, Decontaminate
from m1.curation.dedup import DedupConfig, Deduplicate
from m1.curation.ingest import Ingest, IngestConfig, PoolConfig
from m1.curation.sft_format import sft_prompt
from m1.curation.stage import Drop
from m1.curation.text import item_view, question_view
from m1.data.items import OPTION_LETTERS
from m1.data.suite import SUITE_FILE_NAME, load_suite, shared_data_dir

WORD_EDIT_MIN_WORDS = 12
THRESHOLD = DedupConfig().threshold  # the similarity rule both methods apply (fuzz.ratio / 100)
PERTURBATIONS = ("whitespace", "case", "punctuation", "option order", "word edit")


# --------------------------------------------------------------------------- building the rows


def perturb(rng: random.Random, question: str, options: dict[str, str], answer_idx: str,
            vocabulary: list[str]) -> tuple[str, dict[str, str], str, list[str]]:
    """A copy changed in 1-3 ways a human or a scraper would change it; returns what was done."""
    kinds = [kind for kind in PERTURBATIONS
             if kind != "word edit" or len(question.split()) >= WORD_EDIT_MIN_WORDS]
    chosen = rng.sample(kinds, rng.randint(1, min(3, len(kinds))))
    for kind in chosen:
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
            "answer": options[answer_idx], "prompt": sft_prompt(question, options), "metadata": {}, **tags}


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
            length = rng.randint(6, 16)
            start = rng.randrange(max(1, len(words) - length + 1))
            parts.append(" ".join(words[start:start + length]))
        question = " ".join(parts).rstrip("?.:") + "?"
        row_options = dict(zip("ABCD", rng.sample(options, 4)))
        view = item_view(question, row_options)
        if view in seen:
            continue
        seen.add(view)
        uid = f"filler-{len(rows)}"
        rows.append(make_row(uid, "Filler", question, row_options, "A", kind="filler", origin=uid))
    return rows


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
            q, o, a, kinds = perturb(rng, origin["question"], origin["options"], origin["answer_idx"], vocabulary)
            planted.append(make_row(f"{origin['uid']}~{copy}", origin["source"], q, o, a, kind="pool copy",
                                    origin=origin["uid"], perturbations=kinds))
    for key, item in rng.sample(eval_items, 8000):
        q, o, a, kinds = perturb(rng, item.question, item.options, item.answer_idx, vocabulary)
        planted.append(make_row(f"eval-copy-{key}", "Planted", q, o, a, kind="eval copy", origin=key,
                                perturbations=kinds))
    long_questions = [(key, item) for key, item in eval_items if len(item.question.split()) >= WORD_EDIT_MIN_WORDS]
    for key, item in rng.sample(long_questions, 1000):
        donor = rng.choice(eval_items)[1]
        while sorted(donor.options.values()) == sorted(item.options.values()):  # PubMedQA: all yes/no/maybe
            donor = rng.choice(eval_items)[1]
        options = dict(zip(OPTION_LETTERS, list(donor.options.values())))
        planted.append(make_row(f"eval-question-{key}", "Planted", item.question, options, "A",
                                kind="eval question", origin=key, perturbations=["other options"]))

    texts = [row["question"].split() for row in real] + [item.question.split() for _, item in eval_items]
    option_texts = sorted({t for row in real for t in row["options"].values() if t} |
                          {t for _, item in eval_items for t in item.options.values() if t})
    filler = filler_rows(rng, total - len(real) - len(planted), texts, option_texts)
    rows = real + planted + filler
    rng.shuffle(rows)
    natural = {"dup_pairs": [(row["uid"], o.detail.split()[4]) for row, o in zip(real, natural_dups)
                             if isinstance(o, Drop)],
               "eval_pairs": natural_matches, "eval_twins": eval_twins, "contaminated": natural_contaminated}
    return rows, natural, [{"key": key, "item": item} for key, item in eval_items]


def decontaminator(method: str = "minhash") -> Decontaminate:
    return Decontaminate(DecontamConfig(method=method))


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

    def find(self, key: str) -> str:
        while self.parent.get(key, key) != key:
            key = self.parent[key]
        return key

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def score_dedup(rows: list[dict], outcomes: list, groups: Groups, real_uids: set[str]) -> dict[str, Any]:
    # Reused evaluation questions test decontamination's question view; whether one is a duplicate
    # of its origin depends on how long the question is next to its options, so dedup leaves them out.
    reused = {row["uid"] for row in rows if row["kind"] == "eval question"}
    members = Counter(groups.of[row["uid"]] for row in rows if row["uid"] not in reused)
    planted_groups = {groups.of[row["uid"]] for row in rows if row["kind"] in ("pool copy", "eval copy")}
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


def score_decontam(rows: list[dict], outcomes: list, natural: set[str], eval_by_key: dict[str, Any]) -> dict[str, Any]:
    positives = {row["uid"] for row in rows if row["kind"] in ("eval copy", "eval question")}
    scored = [(row, o) for row, o in zip(rows, outcomes) if row["kind"] != "real"]
    flagged = {row["uid"] for row, o in scored if isinstance(o, Drop)}
    found = flagged & positives
    missed = Counter()
    for row, _ in scored:
        if row["uid"] in positives - flagged:
            origin = eval_by_key[row["origin"]]
            views = [(view_of(row), item_view(origin.question, origin.options))]
            if row["kind"] == "eval question" or len(origin.question.split()) >= DecontamConfig().question_min_words:
                views.append((question_view(row["question"]), question_view(origin.question)))
            below = all(fuzz.ratio(mine, theirs) / 100 < THRESHOLD for mine, theirs in views)
            missed["below the rule" if below else "not found"] += 1
    real_flagged = Counter(row["source"] for row, o in zip(rows, outcomes)
                           if row["kind"] == "real" and isinstance(o, Drop))
    return {"positives": len(positives), "found": len(found), "false": len(flagged - positives),
            "recall": len(found) / len(positives) if positives else 1.0,
            "precision": len(found) / len(flagged) if flagged else 1.0,
            "missed": dict(missed), "real_flagged": dict(real_flagged),
            "real_expected": len(natural & {row["uid"] for row in rows})}


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
    contaminated = [row for row in rows if row["kind"] in ("eval copy", "eval question") and row["uid"] not in taken]
    taken |= {row["uid"] for row in rng.sample(contaminated, int(size * 0.15))}
    rest = [row for row in rows if row["uid"] not in taken and row["kind"] in ("filler", "real")]
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


def describe(name: str, dedup: dict, decontam: dict) -> None:
    print(f"  {name:<9} dedup {dedup['recall']:.4f} recall / {dedup['precision']:.4f} precision "
          f"({dedup['right']:,} of {dedup['expected']:,} planted duplicates dropped, {dedup['wrong']:,} wrong drops; "
          f"misses: {dedup['below_rule']:,} below the {THRESHOLD} rule itself, {dedup['not_found']:,} not found, "
          f"{dedup['expected'] - dedup['right'] - dedup['below_rule'] - dedup['not_found']:,} dropped as twins of "
          f"reused questions; {dedup['natural']:,} natural, {dedup['reused']:,} drops involving reused questions)")
    print(f"  {'':<9} decontamination {decontam['recall']:.4f} recall / {decontam['precision']:.4f} precision "
          f"({decontam['found']:,} of {decontam['positives']:,} planted found, {decontam['false']:,} false; "
          f"misses: {decontam['missed'].get('below the rule', 0):,} below the rule, "
          f"{decontam['missed'].get('not found', 0):,} not found)")


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

    print(f"\nminhash, all {len(rows):,} rows (2 cores, one process):")
    dedup_out, dedup_s = timed(Deduplicate(DedupConfig()).process_all, rows)
    decontam_out, decontam_s = timed(run_decontam, decontaminator(), rows)
    dedup_score = score_dedup(rows, dedup_out, groups, real_uids)
    decontam_score = score_decontam(rows, decontam_out, natural["contaminated"], eval_by_key)
    print(f"  wall time: dedup {dedup_s:.1f} s + decontamination {decontam_s:.1f} s "
          f"(suite index included) = {dedup_s + decontam_s:.1f} s")
    describe("", dedup_score, decontam_score)
    print(f"  real rows matching the suite: {decontam_score['real_flagged']} "
          f"(found before planting: {decontam_score['real_expected']})")
    recall_by_kind = Counter(k for row in rows if row["kind"] != "real" for k in row.get("perturbations", []))
    print("  perturbations planted: " + ", ".join(f"{k} {n:,}" for k, n in recall_by_kind.most_common()))

    small = subset(rows, args.subset, args.seed)
    print(f"\nsubset of {len(small):,} rows ({dict(Counter(row['kind'] for row in small))}):")
    results = {}
    for method in ("minhash", "reference"):
        (d_out, d_s) = timed(Deduplicate(DedupConfig(method=method)).process_all, small)
        (c_out, c_s) = timed(run_decontam, decontaminator(method), small)
        results[method] = (d_s, c_s)
        print(f"  {method:<9} dedup {d_s:.1f} s, decontamination {c_s:.1f} s")
        describe(method, score_dedup(small, d_out, groups, real_uids),
                 score_decontam(small, c_out, natural["contaminated"], eval_by_key))

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
