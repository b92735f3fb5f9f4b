"""Sphinx extension: an unnumbered exercise's title is its own heading, not "Exercise (Exercise 2.1 · ...)".

sphinx-exercise titles an exercise marked ``:nonumber:`` "Exercise (<argument>)" and its solution
"Solution to Exercise (<argument>)". The book's exercises carry their whole heading as the argument
(``Exercise 2.1 · <title> (difficulty d/5, importance i/5, m min)``, ``palindrome.book.exercises.Exercise.heading``),
because the book's parts are unnumbered, so this post-transform, run after sphinx-exercise has built
both titles, keeps the heading alone: "Exercise 2.1 · ..." and "Solution to Exercise 2.1 · ...".
"""

from __future__ import annotations

import re

from docutils import nodes
from sphinx.transforms.post_transforms import SphinxPostTransform

WRAPPED = re.compile(r"^(?P<lead>\s*)Exercise \((?P<heading>Exercise \d+\.\d+ · .*)\)$", re.DOTALL)


def _unwrap(element: nodes.Element) -> None:
    """Replace ``element``'s children by its heading alone when its text is "Exercise (Exercise N.k · ...)"."""
    match = WRAPPED.match(element.astext())
    if match:
        element.children = []
        element += nodes.Text(match["lead"] + match["heading"])


class ExerciseHeadings(SphinxPostTransform):
    """Unwrap the titles of unnumbered exercises and the references to them in their solutions' titles."""

    default_priority = 30  # after sphinx-exercise's exercise (20) and solution (21, 22) titles

    def run(self) -> None:
        from sphinx_exercise.nodes import exercise_node, solution_node

        for node in self.document.findall(exercise_node):
            if node.children and isinstance(node.children[0], nodes.title):
                _unwrap(node.children[0])
        for node in self.document.findall(solution_node):
            if node.children and isinstance(node.children[0], nodes.title):
                for reference in node.children[0].findall(nodes.reference):
                    _unwrap(reference)


def setup(app) -> dict:
    app.add_post_transform(ExerciseHeadings)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
