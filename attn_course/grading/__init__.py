"""Grading a class with nbgrader: in parallel, each submission boxed, every one with a reason.

- :mod:`attn_course.grading.batch`: ``attn-course grade`` (the parent process)
- :mod:`attn_course.grading.worker`: one submission, with nbgrader's Autograde and feedback
- :mod:`attn_course.grading.execute`: nbgrader's Execute in a sandboxed kernel that may die
- :mod:`attn_course.grading.sandbox`: resource limits, bubblewrap, an unprivileged uid
- :mod:`attn_course.grading.guard`: undoes monkeypatching inside the kernel before each cell
- :mod:`attn_course.grading.preprocessors`: repairs tampered notebooks; stderr is not an error
- :mod:`attn_course.grading.selfcheck`: ``attn-course check``, the students' self-check

Nothing here is imported by ``import attn_course``.
"""
