"""YAML with line numbers: the data, plus where each key and item stands in the file.

app.yaml is read defensively, because a few hundred bytes of YAML can ask for gigabytes: the
file is bounded in size, the document in nesting depth and in the number of values it stands
for once its aliases are expanded (the "billion laughs"), and an alias may not refer to the node
that contains it. Every refusal is a `yaml.MarkedYAMLError`, so it carries a line.
"""

from __future__ import annotations

from typing import Any

import yaml

Path_ = tuple[str | int, ...]

#: the largest app.yaml read, in bytes
MAX_FILE_BYTES = 256 * 1024  # PyYAML reads ~100 KB/s: a bound on time as well as memory
#: how deep lists and mappings may nest, aliases expanded (app.yaml itself needs about 6)
MAX_DEPTH = 50
#: how many values (scalars, lists, mappings) the document may stand for, aliases expanded
MAX_VALUES = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlLimitError(yaml.MarkedYAMLError):
    """The document is past one of lakefn's bounds (size, depth, expansion, self-reference)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML silently keeps the last one), complex keys,
    and documents nested deeper than MAX_DEPTH (PyYAML composes recursively)."""

    _depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's name
        # The scanner's work per token grows with the flow level: `[[[[...` 5,000 deep took a
        # second and 1 MiB of it would take hours. Refuse before the parser sees it.
        if self.flow_level >= MAX_DEPTH:
            raise YamlLimitError(
                problem=f"nested more than {MAX_DEPTH} levels deep",
                problem_mark=self.get_mark(),
            )
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlLimitError(
                    problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as exc:
            # PyYAML lets these through for values that look typed but are not, such as the
            # date 2024-13-45 or `!!int x`.
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value: {exc}", node.start_mark
            ) from None


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue  # `<<: *defaults`: merged below; keys written out override merged ones
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found a complex key (a list or mapping used as a key); keys must be names",
                key_node.start_mark,
            )
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r} (first on line {seen[key] + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def check_size(text: str) -> None:
    """Refuse a document longer than MAX_FILE_BYTES before parsing any of it."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise YamlLimitError(
            problem=f"the file is {size:,} bytes; lakefn reads app.yaml up to "
            f"{MAX_FILE_BYTES:,} bytes (256 KiB)"
        )


def load_with_lines(text: str) -> tuple[Any, dict[Path_, int]]:
    """Parse `text`: the data, and each path (keys and indexes) mapped to its 1-based line."""
    check_size(text)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _check_expansion(node)
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {(): node.start_mark.line + 1}
    _walk(node, (), lines)
    return data, lines


def _check_expansion(root: yaml.Node) -> None:
    """Size and depth of the document as a tree (aliases expanded), in time linear in the
    file: each node is measured once. A node met again while it is being measured is an alias
    inside its own anchor."""
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth)
    open_nodes: set[int] = set()

    def measure(node: yaml.Node, level: int) -> tuple[int, int]:
        key = id(node)
        if key in measured:
            return measured[key]
        if level > MAX_DEPTH:
            raise YamlLimitError(
                problem=f"this value nests more than {MAX_DEPTH} levels deep once its aliases "
                "(*name) are expanded",
                problem_mark=node.start_mark,
            )
        if key in open_nodes:
            raise YamlLimitError(
                problem="an alias refers to the list or mapping that contains it "
                "(a value cannot include itself)",
                problem_mark=node.start_mark,
            )
        open_nodes.add(key)
        values, depth = 1, 1
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        for child in children:
            child_values, child_depth = measure(child, level + 1)
            values += child_values
            depth = max(depth, child_depth + 1)
            if values > MAX_VALUES or depth > MAX_DEPTH:
                what = (
                    f"stands for more than {MAX_VALUES:,} values"
                    if values > MAX_VALUES
                    else f"nests more than {MAX_DEPTH} levels deep"
                )
                raise YamlLimitError(
                    problem=f"this value {what} once its aliases (*name) are expanded",
                    problem_mark=node.start_mark,
                )
        open_nodes.discard(key)
        measured[key] = (values, depth)
        return values, depth

    measure(root, 1)


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            _walk(item, path + (index,), lines)


def line_of(lines: dict[Path_, int], path: Path_) -> int | None:
    """The line of `path`, or of its nearest ancestor that has one."""
    for end in range(len(path), -1, -1):
        found = lines.get(tuple(path[:end]))
        if found is not None:
            return found
    return None
