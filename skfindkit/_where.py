"""``where=`` conditions over metadata columns: a small parser, no ``eval``.

The form (``docs/metadata.md``)::

    condition := term ("or" term)*
    term      := factor ("and" factor)*
    factor    := "not" factor | "(" condition ")" | comparison
    comparison:= column OP value | column ["not"] "in" "[" value ("," value)* "]"
    OP        := "==" | "!=" | "<" | "<=" | ">" | ">="
    value     := a number (``3``, ``-2.5``, ``1e3``), a string in single or
                 double quotes (backslash escapes the quote), ``true``/``false``

Column names are identifiers (letters, digits, ``_``, not starting with a
digit), or any name in backquotes (```shop name```). Keywords (``and``, ``or``,
``not``, ``in``, ``true``, ``false``) are lowercase. A string column compares
with strings, a numeric or boolean column with numbers (and ``true``/``false``);
anything else, an unknown column or a syntax error raises
:class:`WhereError` naming the column or the position. Comparisons with NaN
are False (``!=`` is True), as in numpy.

:func:`where_mask` evaluates a condition over columns (a dict of 1-D arrays
of equal length) to a boolean mask, with numpy: nothing of the text is run.
"""

import re

import numpy as np

__all__ = ["WhereError", "parse_where", "where_mask"]


class WhereError(ValueError):
    """A ``where`` condition that cannot be parsed or does not fit the columns."""


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<quoted>`[^`]+`)
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not", "in", "true", "false"}
_OPS = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
        ">": np.greater, ">=": np.greater_equal}


def _tokens(text):
    out, pos = [], 0
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if found is None:
            raise WhereError(f"where: unexpected {text[pos:pos + 10]!r} at position {pos} "
                             f"of {text!r}")
        kind, value = found.lastgroup, found.group()
        if kind == "name" and value in _KEYWORDS:
            kind = value
        elif kind == "quoted":
            kind, value = "name", value[1:-1]
        elif kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        elif kind == "number":
            value = float(value) if any(c in value for c in ".eE") else int(value)
        if kind != "space":
            out.append((kind, value, pos))
        pos = found.end()
    out.append(("end", None, len(text)))
    return out


_MAX_DEPTH = 100  # nested parentheses / "not"s: deeper is refused, not recursed into


class _Parser:
    def __init__(self, text):
        self.text, self.tokens, self.i, self.depth = text, _tokens(text), 0, 0

    def peek(self):
        return self.tokens[self.i]

    def take(self, *kinds):
        kind, value, pos = self.tokens[self.i]
        if kind not in kinds and not (kind == "op" and value in kinds):
            want = " or ".join(repr(k) for k in kinds)
            got = "the end" if kind == "end" else repr(value if value is not None else kind)
            raise WhereError(f"where: expected {want} at position {pos} of {self.text!r}, "
                             f"got {got}")
        self.i += 1
        return kind, value, pos

    def chain(self, keyword, operand):
        """``operand (keyword operand)*`` as one flat ``(keyword, a, b, ...)`` node."""
        nodes = [operand()]
        while self.peek()[0] == keyword:
            self.i += 1
            nodes.append(operand())
        return nodes[0] if len(nodes) == 1 else (keyword, *nodes)

    def condition(self):
        return self.chain("or", self.term)

    def term(self):
        return self.chain("and", self.factor)

    def factor(self):
        kind, value, pos = self.peek()
        if kind not in ("not", "op"):
            return self.comparison()
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise WhereError(f"where: nested more than {_MAX_DEPTH} levels deep at position "
                             f"{pos} of {self.text[:80]!r}")
        if kind == "not":
            self.i += 1
            node = ("not", self.factor())
        elif value == "(":
            self.i += 1
            node = self.condition()
            self.take(")")
        else:
            node = self.comparison()
        self.depth -= 1
        return node

    def value(self):
        kind, value, pos = self.take("number", "string", "true", "false")
        if kind in ("true", "false"):
            return kind == "true", pos
        return value, pos

    def comparison(self):
        _, column, pos = self.take("name")
        kind, value, _ = self.peek()
        negate = kind == "not"
        if negate:
            self.i += 1
            self.take("in")
            kind = "in"
        elif kind == "in":
            self.i += 1
        if kind == "in":
            self.take("[")
            values = [self.value()]
            while self.peek()[1] == ",":
                self.i += 1
                values.append(self.value())
            self.take("]")
            node = ("in", column, pos, values)
            return ("not", node) if negate else node
        _, op, _ = self.take(*_OPS)
        return ("cmp", column, pos, op, self.value())


def parse_where(text):
    """The syntax tree of a condition (nested tuples); :class:`WhereError` if malformed.

    A chain ``a or b or c`` is one flat node ``("or", a, b, c)`` (likewise
    ``and``), so its length is bounded by memory only, never by recursion;
    nesting (parentheses, ``not``) is bounded at 100 levels.
    """
    if not isinstance(text, str) or not text.strip():
        raise WhereError(f"where: expected a non-empty condition string, got {text!r}")
    parser = _Parser(text)
    node = parser.condition()
    parser.take("end")
    return node


def _column(columns, name, pos, text):
    if name not in columns:
        raise WhereError(f"where: unknown column {name!r} at position {pos} of {text!r}; "
                         f"the columns are {sorted(columns)}")
    return np.asarray(columns[name])


def _checked_value(column, name, pos, value, text):
    textual = column.dtype.kind in "USO"
    if textual != isinstance(value, str):
        kind = "text" if textual else "numeric"
        raise WhereError(f"where: column {name!r} is {kind}, compared with {value!r} at "
                         f"position {pos} of {text!r}")
    return value


def _evaluate(node, columns, text):
    tag = node[0]
    if tag in ("and", "or"):
        combine = np.logical_and if tag == "and" else np.logical_or
        mask = _evaluate(node[1], columns, text)
        for operand in node[2:]:
            mask = combine(mask, _evaluate(operand, columns, text))
        return mask
    if tag == "not":
        return ~_evaluate(node[1], columns, text)
    column = _column(columns, node[1], node[2], text)
    if tag == "in":
        values = [_checked_value(column, node[1], pos, v, text) for v, pos in node[3]]
        return np.isin(column, np.asarray(values))
    _, name, _, op, (value, pos) = node
    value = _checked_value(column, name, pos, value, text)
    return np.asarray(_OPS[op](column, value), dtype=bool)


def where_mask(text, columns):
    """Boolean mask of the rows of ``columns`` (dict of 1-D arrays) meeting ``text``.

    Raises
    ------
    WhereError
        If the condition is malformed, names an unknown column, or compares a
        column with a value of another kind; the message names the position.
    """
    node = parse_where(text)
    if not columns:
        raise WhereError("where: no metadata columns are attached (use attach_metadata)")
    return _evaluate(node, columns, text)
