"""MkDocs hooks for the segdice site.

The docstrings are numpydoc, read by mkdocstrings, which renders Markdown: a Sphinx role such as
``:func:`dice_loss``` would reach the page as the literal text ``:func:`` in front of the code. This
hook drops the role and keeps the code, shortening ``~package.module.name`` to ``name`` as Sphinx does.
"""

from __future__ import annotations

import re

_ROLE = re.compile(
    r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const|ref|term|doc|math):<code>(?P<tilde>~?)(?P<name>[^<]*)</code>"
)


def _code(match: re.Match[str]) -> str:
    name = match["name"]
    if match["tilde"]:
        name = name.rsplit(".", 1)[-1]
    return f"<code>{name}</code>"


def strip_sphinx_roles(html: str) -> str:
    """Replace ``:role:<code>x</code>`` by ``<code>x</code>``.

    Examples
    --------
    >>> strip_sphinx_roles("see :func:<code>dice_loss</code> and :class:<code>~segdice.SegDiceError</code>")
    'see <code>dice_loss</code> and <code>SegDiceError</code>'
    """
    return _ROLE.sub(_code, html)


def on_page_content(html: str, **kwargs) -> str:
    return strip_sphinx_roles(html)
