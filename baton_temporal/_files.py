"""Reading small configuration files (flow files, price tables) without being blown up.

Three ways a file given by name can exhaust a process: it is huge, it is not a file at
all (``/dev/zero``, a FIFO that never ends, a directory), or it is small YAML whose
aliases expand to gigabytes (the "billion laughs"). :func:`read_small_file` refuses the
first two before reading more than the cap; :func:`load_yaml` refuses the third before
building anything.

Example::

    text = read_small_file("flow.yaml", limit=MAX_FLOW_FILE_BYTES, what="flow file")
    data = load_yaml(text)
"""

from __future__ import annotations

import os
import stat
from typing import Any

__all__ = [
    "MAX_FLOW_FILE_BYTES",
    "MAX_PRICES_FILE_BYTES",
    "MAX_YAML_NODES",
    "FileRefused",
    "YamlRefused",
    "load_yaml",
    "read_small_file",
]

# A flow is started as one Temporal payload, which cannot exceed 2 MB.
MAX_FLOW_FILE_BYTES = 2 * 1024 * 1024
# A price table with thousands of models is well under a megabyte.
MAX_PRICES_FILE_BYTES = 8 * 1024 * 1024
# Nodes a YAML document may expand to, aliases counted every time they are used. A flow
# with 1,000 steps of 20 values each is ~25,000.
MAX_YAML_NODES = 200_000


class FileRefused(OSError):
    """The file is too large or not a regular file."""


class YamlRefused(ValueError):
    """The YAML would expand beyond :data:`MAX_YAML_NODES` nodes, or refers to itself."""


def read_small_file(path: str | os.PathLike[str], *, limit: int, what: str) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes.

    Raises :class:`FileRefused` for a device, FIFO, socket or directory (checked on the
    opened file, so a path swapped after the check cannot slip through) and for a file
    over ``limit``, reading at most ``limit + 1`` bytes either way; ``OSError`` as
    ``open`` raises it; ``UnicodeDecodeError`` for text that is not UTF-8.
    """
    # Looked at before opening: opening a socket fails, a directory opens but cannot be
    # read, a FIFO with no writer would block.
    _refuse_if_special(os.stat(path), path, what)
    # O_NONBLOCK: should the path turn into a FIFO meanwhile, open must not wait for ever.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        _refuse_if_special(info, path, what)
        if info.st_size > limit:
            raise FileRefused(_too_big(path, info.st_size, limit, what))
        data = file.read(limit + 1)  # the file may have grown since fstat
    if len(data) > limit:
        raise FileRefused(_too_big(path, len(data), limit, what))
    return data.decode("utf-8")


def _refuse_if_special(info: os.stat_result, path: object, what: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise FileRefused(
            f"{path} is {_kind(info.st_mode)}, not a regular file; give the path of a "
            f"{what} (a .json or .yaml file)"
        )


def _too_big(path: object, size: int, limit: int, what: str) -> str:
    return (
        f"{path} is {size:,} bytes or more; a {what} may be at most {limit:,} bytes. "
        "Is it the right file?"
    )


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def load_yaml(text: str, *, max_nodes: int = MAX_YAML_NODES) -> Any:
    """``yaml.safe_load(text)``, refusing documents that expand beyond ``max_nodes`` nodes
    (anchors and aliases are allowed, but each use of an alias counts its whole subtree)
    or that contain themselves (``&a [*a]``).

    Raises ``yaml.YAMLError`` for malformed YAML and :class:`YamlRefused` for the above.
    """
    import yaml

    class _Bounded(yaml.SafeLoader):
        def get_single_node(self) -> Any:
            node = super().get_single_node()
            if node is not None:
                _check_expansion(node, max_nodes)
            return node

    _Bounded.add_constructor("tag:yaml.org,2002:int", _plain_int)
    _Bounded.add_constructor("tag:yaml.org,2002:float", _plain_float)

    loader = _Bounded(text)
    try:
        return loader.get_single_data()
    except RecursionError:
        raise YamlRefused(
            "the YAML is nested too deeply to read; flatten its lists and mappings"
        ) from None
    finally:
        loader.dispose()


def _plain_int(loader: Any, node: Any) -> Any:
    """YAML 1.1 reads ``0600`` as octal (384) and ``10:00`` as base 60 (600): a timeout,
    a count or a zip code in args would silently become another number. Refused instead."""
    value = loader.construct_yaml_int(node)
    text = str(node.value).replace("_", "").lstrip("+-")
    octal = len(text) > 1 and text[0] == "0" and text.isdigit() and int(text) != abs(value)
    if ":" in text or octal:  # 007 is 7 either way: kept
        raise YamlRefused(
            f"line {node.start_mark.line + 1}: {node.value} would be read as the number "
            f"{value} (YAML 1.1 reads a leading 0 as octal and "
            "a:b as base 60); write the number plainly (600, not 0600; seconds, not "
            f"10:00), or quote it for a string ('{node.value}')"
        )
    return value


def _plain_float(loader: Any, node: Any) -> Any:
    if ":" in str(node.value):  # base 60 too (1:30.5 is 90.5)
        raise YamlRefused(
            f"line {node.start_mark.line + 1}: {node.value} would be read as the number "
            f"{loader.construct_yaml_float(node)} (YAML 1.1 reads a:b as base 60); write "
            f"the number of seconds, or quote it for a string ('{node.value}')"
        )
    return loader.construct_yaml_float(node)


def _check_expansion(root: Any, max_nodes: int) -> None:
    """Count the nodes ``root`` expands to, each shared node once per use, without
    recursion (a deep document must not hit the recursion limit here)."""
    import yaml

    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            total = 1 + sum(sizes[id(c)] for c in _children(node, yaml))
            if total > max_nodes:
                raise YamlRefused(
                    f"the YAML expands to more than {max_nodes:,} values (aliases such as "
                    "*name count their whole anchor each time); write the values out or "
                    "use fewer nested aliases"
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YamlRefused(
                "the YAML refers to itself (an alias inside its own anchor); a flow or "
                "price table cannot contain itself"
            )
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node, yaml):
            if id(child) not in sizes:
                stack.append((child, False))


def _children(node: Any, yaml: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
