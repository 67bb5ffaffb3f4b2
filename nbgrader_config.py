"""nbgrader configuration for the course.

The course directory is the repository root: nbgrader *source* notebooks (with solutions and
hidden tests) live in ``solutions/<assignment>/``, the generated *release* notebooks that students
get in ``exercises/<assignment>/``. Submissions, autograded copies and feedback go to
``submitted/``, ``autograded/`` and ``feedback/`` (git-ignored).
"""

import os

c = get_config()  # noqa: F821 -- injected by nbgrader when it loads this file

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "generative-models"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"

# What a student sees in place of each solution region.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Each cell of a graded notebook must finish within this many seconds; genlib.testing stops a
# single slow call of a student's function well before that (5 s by default).
c.Execute.timeout = 30
