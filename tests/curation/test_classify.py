"""Domain classification: reading a MeSH code out of a reply (never "the last two characters"),
the similarity fallback, and the stage against a real HTTP server (`fault_server.py`)."""

from __future__ import annotations

import pytest

from m1.curation.classify import REASK, ClassifyConfig, DomainClassifier
from m1.engine.client import ClientConfig
from m1.curation.mesh import ScopeNoteIndex, load_qualifiers, parse_code
from m1.curation.stage import dropped_rows, kept_rows, run_stage
from m1.data.errors import DataError

from .fault_server import FaultServer
from .servers import row_from


@pytest.fixture(scope="module")
def qualifiers(shared_data):
    return load_qualifiers(shared_data / "mesh" / "qualifier_scope_note.tsv")


def code(reply, qualifiers):
    found = parse_code(reply, qualifiers)
    return found.code if found else None


def test_the_rubric_codes_follow_the_file_order(qualifiers):
    assert len(qualifiers) == 76 and (qualifiers[0].code, qualifiers[-1].code) == ("00", "75")
    named = {q.code: q.name for q in qualifiers}
    assert (named["20"], named["24"], named["50"]) == ("Diagnosis", "Drug Therapy", "Pathology")


@pytest.mark.parametrize("reply, expected", [
    ("The criteria were revised in 2020", None),  # the reference read this as 20
    ("Several findings, 3.20 mg/dL, a 20-year-old.", None),
    ("This asks which drug to give.\nCode: 24", "24"),
    ("I would say the code is 24 (Drug Therapy), as recommended since 2020.", "24"),
    ("**Code:** 50", "50"),
    ("\\boxed{20}", "20"),
    ("Answer: 33", "33"),
    ("Best fit: 20 - Diagnosis. Other candidates were considered in 2019.", "20"),
    ("The question is about Pathology (50), not Physiology.", "50"),
    ("It asks for the first-line treatment.\n\n**24**", "24"),
    ("Drug Therapy", "24"),
    ("The best qualifier is Administration and Dosage.", "01"),
    ("Not Diagnostic Imaging but plain Diagnosis", "20"),  # the last name wins; names do not nest
    ("Code: 76", None),  # out of range
    ("Code: 99, so I pick 12", "12"),
    ("", None),
    ("I am not sure.", None),
])
def test_codes_are_read_where_they_stand_as_codes(qualifiers, reply, expected):
    assert code(reply, qualifiers) == expected


def test_the_fallback_finds_the_closest_scope_note(qualifiers):
    index = ScopeNoteIndex(qualifiers)
    assert index.best("What is the most likely diagnosis in this patient with chest pain?").name == "Diagnosis"
    assert index.best("").code == "00"  # deterministic on empty input


def test_a_missing_rubric_says_how_to_fix_it(tmp_path):
    with pytest.raises(DataError, match="rubric_path"):
        load_qualifiers(tmp_path / "nope.tsv")


def classify_rows():
    options = {"A": "Aspirin", "B": "Heparin", "C": "Warfarin", "D": "Alteplase"}
    return [row_from(uid, "test", question, options, "D") for uid, question in [
        ("drug", "Which drug dissolves the clot in acute ischemic stroke?"),
        ("stubborn", "Which diagnosis fits best for chest pain with ST elevation?"),
        ("second-try", "Which pathology finding is typical of an old infarct?"),
        ("server-down", "Which drug dissolves a pulmonary embolism?"),
    ]]


def answer(body) -> str:
    """How the fake classifier replies, by question; a re-ask is answered differently."""
    question = body["messages"][1]["content"]
    if "clot in acute" in question:
        return "It asks which drug to give.\nCode: 24"
    if "ST elevation" in question:
        return "Guidelines were updated in 2020"
    return "Code: 50" if len(body["messages"]) > 2 else "Hmm, hard to say."


def test_the_classifier_asks_with_the_rubric_first_and_falls_back_flagged(tmp_path, shared_data, qualifiers):
    def schedule(body):
        return ["500"] * 9 if "pulmonary" in body["messages"][1]["content"] else ["ok"]

    with FaultServer(schedule=schedule, answer=answer) as server:
        client = ClientConfig(model="judge", base_url=server.base_url, max_tokens=64, timeout=5, max_retries=2,
                              backoff_initial=0.01, backoff_max=0.02)
        stage = DomainClassifier(ClassifyConfig(client=client, workers=2), tmp_path)
        manifest = run_stage(stage, classify_rows(), tmp_path / "classify", upstream="u")

    domains = {row["uid"]: row["domain"] for row in kept_rows(tmp_path / "classify")}
    assert domains["drug"] | {"reply": ""} == {"code": "24", "name": "Drug Therapy", "method": "llm",
                                                "flagged": False, "attempts": 1, "reply": ""}
    assert domains["second-try"]["code"] == "50" and domains["second-try"]["attempts"] == 2
    # No readable code after both asks, or no reply at all: the most similar scope note, flagged.
    stubborn = next(row for row in classify_rows() if row["uid"] == "stubborn")
    assert domains["stubborn"]["method"] == "fallback" and domains["stubborn"]["flagged"]
    assert domains["stubborn"]["code"] == ScopeNoteIndex(qualifiers).best(stage.question(stubborn)).code
    assert domains["stubborn"]["reply"] == "Guidelines were updated in 2020"  # not read as code 20
    assert domains["server-down"]["method"] == "fallback" and domains["server-down"]["flagged"]
    assert manifest["extra"]["methods"] == {"llm": 2, "fallback": 2}

    first = next(body for body in server.bodies if "clot in acute" in body["messages"][1]["content"])
    system, user = first["messages"]
    assert system["role"] == "system" and system["content"].count("\n00 Abnormalities: Used with organs") == 1
    assert "75 Virology" in system["content"] and "Code: NN" in system["content"]
    assert user == {"role": "user", "content": "Which drug dissolves the clot in acute ischemic stroke?\n"
                                               "A. Aspirin\nB. Heparin\nC. Warfarin\nD. Alteplase"}
    reask = next(body for body in server.bodies if len(body["messages"]) == 4 and "infarct" in str(body))
    assert reask["messages"][2:] == [{"role": "assistant", "content": "Hmm, hard to say."},
                                     {"role": "user", "content": REASK}]
    # Every row shares the same system message, so a provider's prompt cache can serve the prefix.
    assert len({body["messages"][0]["content"] for body in server.bodies}) == 1


def test_fallback_drop_drops_with_the_reason(tmp_path, shared_data):
    with FaultServer(schedule=lambda body: ["ok"], answer=lambda body: "no idea") as server:
        client = ClientConfig(model="judge", base_url=server.base_url, max_tokens=64)
        stage = DomainClassifier(ClassifyConfig(client=client, fallback="drop", max_attempts=1), tmp_path)
        manifest = run_stage(stage, classify_rows()[:1], tmp_path / "classify", upstream="u")
    assert manifest["dropped"] == {"domain not classified: no code in the reply": 1}
    assert dropped_rows(tmp_path / "classify")[0]["detail"] == "no idea"
