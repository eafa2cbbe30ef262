"""Curation: from raw medical QA pools to m23k/m1k-style reasoning sets (SPEC §3), as resumable stages."""
