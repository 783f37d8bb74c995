"""The course: notebook setup (``course.setup(profile)`` in every notebook's first cells) and the
notebook runner (``python -m sbir_lib.course run``)."""

from sbir_lib.course.context import Course, setup

__all__ = ["Course", "setup"]
