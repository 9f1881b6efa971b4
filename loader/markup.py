"""HTML and SVG built from Python calls, escaping every string unless it is `Markup`.

The HTML report shows job-supplied text (pipeline names, run keys, error messages). Here
a plain `str` is always text: `element("td", name)` escapes `name`, and only what this
module built (a `Markup`) is inserted as it is. Tag and attribute names come from code and
are checked, so a value can never open a tag, an attribute or a script.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping

from loader.terminal import printable

_NAME = re.compile(r"[a-z][a-z0-9-]*(?::[a-z]+)?", re.IGNORECASE)
# Void elements have no end tag; the rest always get one (SVG's too, which HTML accepts).
_VOID = frozenset({"br", "hr", "img", "input", "link", "meta", "wbr"})


class Markup(str):
    """A string of HTML this module built: inserted as it is, never escaped again."""

    __slots__ = ()


def escape(value: object) -> Markup:
    """Return `value` as HTML text: `<`, `>`, `&` and quotes escaped, control characters shown.

    A control character (ESC, NUL, a newline in a name) is shown as its Python escape,
    as the text report shows it; HTML would otherwise drop or fold it silently.
    """
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(printable(str(value)), quote=True))


def join(children: Iterable[object]) -> Markup:
    """Concatenate children, escaping each one that is not `Markup`."""
    return Markup("".join(_render(child) for child in children))


def element(
    tag: str,
    *children: object,
    attrs: Mapping[str, object] | None = None,
    **more: object,
) -> Markup:
    """Return `<tag attrs>children</tag>`, every text child and attribute value escaped.

    Attributes come from `attrs` and from keywords (`class_` is `class`, `_` becomes
    `-`, so `aria_label` is `aria-label`); a value of None or False leaves the
    attribute out, True writes it bare.
    """
    _check_name(tag)
    parts = [tag]
    named = dict(attrs or {})
    named.update({key.rstrip("_").replace("_", "-"): value for key, value in more.items()})
    for name, value in named.items():
        _check_name(name)
        if value is None or value is False:
            continue
        if value is True:
            parts.append(name)
        else:
            # Always escaped, Markup or not: an attribute value is never markup.
            text = html.escape(printable(_attribute_text(value)), quote=True)
            parts.append(f'{name}="{text}"')
    opening = f"<{' '.join(parts)}>"
    if tag in _VOID:
        return Markup(opening)
    return Markup(f"{opening}{join(children)}</{tag}>")


def _attribute_text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a tag or attribute name: {name!r}")


def _render(child: object) -> str:
    if child is None or child is False:
        return ""
    if isinstance(child, Markup):
        return child
    if isinstance(child, str | int | float):
        return escape(child)
    if isinstance(child, Iterable):
        return join(child)
    return escape(child)
