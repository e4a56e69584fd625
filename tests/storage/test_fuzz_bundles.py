"""A small run of the case bundle fuzzer (``bench/fuzz_bundles.py``, also
``python -m bench.fuzz_inputs --only bundles``): whatever arrives as a bundle, the verifier
answers with problems or OK, never an exception, and never OK for changed content."""

from __future__ import annotations

import io

from bench.fuzz_bundles import fuzz_case_bundles, original
from storage.case_verify import verify_bundle


def test_bundle_fuzz_has_no_crash_and_no_false_accept() -> None:
    tally = fuzz_case_bundles(1500, seed_value=7)
    assert not tally.crashes, tally.report()
    assert tally.total == 1500 and tally.accounted()
    assert tally.n_rejected > 1000, tally.report()
    reasons = " ".join(tally.rejected)
    for word in ("manifest_modified", "content_modified", "file_modified", "bundle unreadable"):
        assert word in reasons, tally.report()


def test_the_fuzzed_original_is_a_valid_bundle() -> None:
    """The fuzzer damages a bundle that verifies: otherwise every rejection is trivial."""
    data, members = original()
    assert verify_bundle(io.BytesIO(data)).ok
    assert {"manifest.json", "manifest.sig", "report.html", "verify_bundle.py",
            "public_key.pem"} <= set(members)
