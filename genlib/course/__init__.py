"""Instructor tooling: release, collect, autograde in parallel, feedback, grades, summary.

The ``course`` command (:mod:`genlib.course.cli`) runs one step of the course per command; the
modules below do the work and import their heavy dependencies (nbgrader, matplotlib) only when
called, so importing this package is cheap. Graded notebooks never import it
(:data:`genlib.testing.TOOLING_PACKAGES`).

- :mod:`genlib.course.course` -- the nbgrader course directory, its folders and gradebook.
- :mod:`genlib.course.release` -- ``course release``.
- :mod:`genlib.course.collect` -- ``course collect``: folders and LMS zips to ``submitted/``.
- :mod:`genlib.course.submission` -- reading any handed-in file; rebuilding it on the release.
- :mod:`genlib.course.sandbox` -- resource limits for submissions' kernels (a kernelspec).
- :mod:`genlib.course.executor` -- nbgrader execution that survives any submission.
- :mod:`genlib.course.worker` -- a grading worker process.
- :mod:`genlib.course.gradebook` -- per-submission gradebooks and the merge into the course's.
- :mod:`genlib.course.autograde` -- ``course autograde``: the parallel orchestrator.
- :mod:`genlib.course.feedback` -- ``course feedback``: HTML without hidden tests.
- :mod:`genlib.course.grades` -- ``course grades``: ``grades.csv``.
- :mod:`genlib.course.summary` -- ``course summary``: score histogram, pass rate per part.
- :mod:`genlib.course.selfcheck` -- ``course check``: a student's run of the visible tests.
"""
