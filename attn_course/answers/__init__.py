"""NumPy answer keys of the assignments, with the names and signatures the students write.

Assignments 03 and 04 grade functions of :mod:`attn_course.functional` itself; 01 and 02
grade the NumPy pieces of Chapters 1 and 2, kept here (``encoder_decoder``, ``attention``).
"""
