"""The last test of the suite (collected after the notebooks, which nbval runs as the README's test command
does): nothing the suite ran modified a tracked file or left a file that git does not ignore (issue 23)."""
from __future__ import annotations

import pytest


def test_the_suite_left_the_checkout_as_it_found_it(request):
    before = getattr(request.config, "sbir_git_status", None)
    now = getattr(request.config, "sbir_git_status_now", None)
    after = now() if now is not None else None
    if before is None or after is None:
        pytest.skip("not a git checkout: nothing to compare")
    changed = sorted(after - before)
    assert not changed, ("the test suite changed the checkout (a test, a notebook run or a figure wrote into "
                         "tracked or non-ignored paths):\n  " + "\n  ".join(changed))
