"""The verdict: whether a variant's outputs are the reference's within a policy. Pure numpy —
the tolerance rule (:mod:`.rule`), the comparison and its wording (:mod:`.compare`,
:mod:`.explanation`), declared outputs' rows paired before they are compared (:mod:`.outputs`),
label ties (:mod:`.ties`), agreement metrics for lossy variants (:mod:`.agreement`), whether a
pass could have failed (:mod:`.power`), and each example's numbers in bounded size
(:mod:`.distribution`)."""
