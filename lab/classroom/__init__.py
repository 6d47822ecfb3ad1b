"""The class, for an instructor: cohorts and join codes, the live class view,
scenarios pushed to a cohort, class results, and predictions learners make
before a run and see graded after it."""
