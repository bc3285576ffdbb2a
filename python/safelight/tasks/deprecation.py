"""The call shapes of safelight 0.1, kept working for one release with a DeprecationWarning.

Every task is now ``run(inputs, *, cluster=None, **options) -> TaskResult``. 0.1 had three
other shapes: ``filter.run(image, kernel, cluster, padding, ...)`` and
``he_filter.run(image, kernel, cluster, ...)`` (options positional after the image),
``denoise.run(cluster, images, sigma, ...)`` (the cluster first), and result classes of
their own (``FilterResult``, ``HEFilterResult``, ``Result``, ``OpenFHEFilterResult``, now all
:class:`~safelight.tasks.report.TaskResult`). The new shape takes exactly one positional
argument, so a second one (or a :class:`~safelight.Cluster` first) can only be the old
shape: :func:`accepts_old_call` translates it and warns once per call, naming the new call.
This module goes with the old shapes.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ..runtime.cluster import Cluster

F = TypeVar("F", bound=Callable[..., Any])


def accepts_old_call(
    task: str, positional: Sequence[str], *, inputs_name: str, cluster_first: bool = False
) -> Callable[[F], F]:
    """Decorate a task's ``run(inputs, *, cluster=None, **options)`` to accept its 0.1 shape.

    Parameters
    ----------
    task : the module's public name, e.g. ``"safelight.tasks.filter"`` (for the message)
    positional : the options the 0.1 ``run`` took positionally after the inputs, in order
    inputs_name : what 0.1 called the inputs (``image``, ``images``), also accepted as a keyword
    cluster_first : 0.1 took the cluster first: ``run(cluster, inputs, *positional)``
    """

    def decorate(run: F) -> F:
        @functools.wraps(run)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            old = inputs_name in kwargs or (
                bool(args) and isinstance(args[0], Cluster) if cluster_first else len(args) > 1
            )
            if not old:
                return run(*args, **kwargs)
            inputs, options = _translate(task, args, kwargs, positional, inputs_name, cluster_first)
            names = ", ".join(f"{name}=..." for name in options)
            warnings.warn(
                f"this call of {task}.run uses the 0.1 shape (options by position"
                f"{', the cluster first' if cluster_first else ''}), which works for one more release; "
                f"call {task}.run({inputs_name}{', ' if names else ''}{names})",
                DeprecationWarning,
                stacklevel=2,
            )
            return run(inputs, **options)

        return wrapper  # type: ignore[return-value]

    return decorate


def _translate(
    task: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    positional: Sequence[str],
    inputs_name: str,
    cluster_first: bool,
) -> tuple[Any, dict[str, Any]]:
    """(inputs, options by keyword) of a call in the 0.1 shape; TypeError as Python gives one."""
    args, options = list(args), {}
    if cluster_first and args and isinstance(args[0], Cluster):
        options["cluster"] = args.pop(0)
    if inputs_name in kwargs:
        if args:
            raise TypeError(f"{task}.run() got multiple values for {inputs_name!r}")
        args.append(kwargs[inputs_name])
    if not args:
        raise TypeError(f"{task}.run() missing its inputs ({inputs_name})")
    inputs, rest = args[0], args[1:]
    if len(rest) > len(positional):
        raise TypeError(
            f"{task}.run() took at most {len(positional)} options by position after the "
            f"{inputs_name} in 0.1 ({', '.join(positional)}), got {len(rest)}"
        )
    options.update(zip(positional, rest))
    for name, value in kwargs.items():
        if name == inputs_name:
            continue
        if name in options:
            raise TypeError(f"{task}.run() got multiple values for {name!r}")
        options[name] = value
    return inputs, options


def renamed_results(task: str, names: Mapping[str, type]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that still hands out a 0.1 result class name,
    with a DeprecationWarning naming the class that replaced it."""

    def __getattr__(name: str) -> Any:
        if name in names:
            new = names[name]
            warnings.warn(
                f"{task}.{name} is now {new.__module__}.{new.__qualname__} (every task returns one); "
                "the old name works for one more release",
                DeprecationWarning,
                stacklevel=2,
            )
            return new
        raise AttributeError(f"module {task!r} has no attribute {name!r}")

    return __getattr__


__all__ = ["accepts_old_call", "renamed_results"]
