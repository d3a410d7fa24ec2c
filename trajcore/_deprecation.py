"""Old spellings of public arguments, kept one release with a ``DeprecationWarning``.

:func:`old_spellings` wraps a function whose signature has only the new spellings: before the call
it maps a renamed keyword onto its new name (``s=`` -> ``sigma=``), and a value that was passed
positionally onto the keyword it now must be (``planted(d, r, sigma, 3)`` -> ``seed=3``), warning
once per use with the new spelling named. The function's body and signature (``inspect.signature``
follows ``__wrapped__``) never see the old spellings, so removing them next release is deleting the
decorator's arguments. :func:`deprecated_alias` is the same for a renamed attribute.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

__all__ = ["old_spellings", "deprecated_alias", "warn_deprecated"]

P = ParamSpec("P")
R = TypeVar("R")

#: a renamed keyword: its new name, or the new name and a function of the old value giving the new one
Rename = str | tuple[str, Callable[[Any], Any]]


def warn_deprecated(message: str, stacklevel: int = 2) -> None:
    """A ``DeprecationWarning`` that the next release removes the spelling ``message`` describes;
    ``stacklevel`` counts from the caller of this function (2: its own caller)."""
    warnings.warn(
        f"{message} (deprecated; the old spelling goes in the next release)", DeprecationWarning, stacklevel + 1
    )


def old_spellings(
    *, keyword_only: tuple[str, ...] = (), renamed: dict[str, Rename] | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator accepting the old spellings of the wrapped function's arguments, with a warning.

    keyword_only : the keyword-only parameters that the old signature took positionally, in their
        old order after the positional ones: extra positional arguments are passed as these.
    renamed : old keyword -> new keyword, or -> ``(new keyword, convert)`` when the value changes
        too (``dense=True`` -> ``storage="dense"``). Giving both spellings is a ``TypeError``.
    """
    renames = dict(renamed or {})

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        parameters = inspect.signature(function).parameters.values()
        positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)
        name = function.__qualname__

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if len(args) > positional and keyword_only:
                extra = args[positional:]
                if len(extra) > len(keyword_only):
                    raise TypeError(f"{name}: too many positional arguments ({len(args)})")
                args = args[:positional]
                for keyword, value in zip(keyword_only, extra, strict=False):
                    if keyword in kwargs:
                        raise TypeError(f"{name}: got {keyword!r} both positionally and as a keyword")
                    warn_deprecated(f"{name}: pass {keyword} as a keyword ({keyword}=...), not positionally")
                    kwargs[keyword] = value
            for old, rename in renames.items():
                if old not in kwargs:
                    continue
                new, convert = (rename, None) if isinstance(rename, str) else rename
                if new in kwargs:
                    raise TypeError(f"{name}: give {new}= only ({old}= is its deprecated spelling)")
                value = kwargs.pop(old)
                kwargs[new] = value if convert is None else convert(value)
                shown = f"{new}=" if convert is None else f"{new}={kwargs[new]!r}"
                warn_deprecated(f"{name}: {old}= is now spelled {shown}")
            return function(*args, **kwargs)

        return wrapper

    return decorate


def deprecated_alias(old: str, new: str, owner: str) -> property:
    """Attribute ``old``, read-only, as the deprecated name of attribute ``new`` of class ``owner``."""

    def read(self: Any) -> Any:
        warn_deprecated(f"{owner}.{old} is now spelled {owner}.{new}")
        return getattr(self, new)

    return property(read, doc=f"Deprecated spelling of :attr:`{new}`.")
