"""Lazy public names for packages (PEP 562): ``import transferlens`` stays cheap (no torch, no numpy), and a
name is imported from its submodule on first access, e.g. ``transferlens.extract``."""

from __future__ import annotations

import importlib
import sys

# no `typing` import: it alone costs more than the rest of `import transferlens` (annotations stay strings)


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` for ``package`` whose public ``exports`` map a name to the relative
    submodule that defines it (``{"extract": ".features"}``). The value is cached in the package on first use.

    A name equal to its submodule's own name (``{"assess": ".assess"}``) resolves to that submodule.
    """

    def __getattr__(name: str) -> Any:
        try:
            where = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module = importlib.import_module(where, package)
        value = module if where.lstrip(".") == name else getattr(module, name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
