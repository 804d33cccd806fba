"""The search for an input where a variant breaks parity. Hypothesis is imported by
:mod:`.engine` alone, so the search's data (:mod:`.data`, :mod:`.tally`, :mod:`.anchor`,
:mod:`.coverage`) can be read without it."""
