"""``skfindkit._where``: conditions over metadata columns, parsed without eval."""

import numpy as np
import pytest

from skfindkit._where import WhereError, parse_where, where_mask

COLUMNS = {
    "shop": np.array(["a", "b", "a", "c", "b'x"]),
    "year": np.array([2019, 2020, 2021, 2022, 2023]),
    "price": np.array([5.0, 12.0, np.nan, 3.0, 10.0]),
    "sale": np.array([True, False, True, False, False]),
    "shop name": np.array(["x", "y", "x", "y", "x"]),
}


def _rows(text):
    return np.flatnonzero(where_mask(text, COLUMNS)).tolist()


@pytest.mark.parametrize("text, rows", [
    ("shop == 'a'", [0, 2]),
    ('shop != "a"', [1, 3, 4]),
    ("shop == 'a' and year >= 2020", [2]),
    ("year < 2020 or year > 2022", [0, 4]),
    ("price <= 10", [0, 3, 4]),
    ("price > 4 and price < 11", [0, 4]),
    ("not price < 10", [1, 2, 4]),  # NaN < 10 is False, so "not" keeps it
    ("shop in ['a', 'c']", [0, 2, 3]),
    ("shop not in ['a', 'c']", [1, 4]),
    ("year in [2019, 2023]", [0, 4]),
    ("sale == true", [0, 2]),
    ("not (shop == 'a' or sale == false)", []),
    ("(shop == 'b' or shop == 'c') and not year == 2020", [3]),
    ("shop == 'b\\'x'", [4]),
    ("`shop name` == 'y'", [1, 3]),
    ("year >= 2.02e3", [1, 2, 3, 4]),
    ("year > -1", [0, 1, 2, 3, 4]),
    ("((((year == 2021))))", [2]),
])
def test_conditions_select_the_rows_numpy_would(text, rows):
    assert _rows(text) == rows


@pytest.mark.parametrize("text, message", [
    ("colour == 'red'", r"unknown column 'colour' at position 0.*columns are"),
    ("shop == 3", r"column 'shop' is text, compared with 3 at position 8"),
    ("year == '2020'", r"column 'year' is numeric"),
    ("year in ['a']", r"column 'year' is numeric"),
    ("year >=", r"expected .* at position 7 .*got the end"),
    ("(year > 1", r"expected '\)' at position 9"),
    ("year = 1", r"unexpected '= 1' at position 5"),
    ("year > 1 year", r"expected 'end' at position 9"),
    ("shop in 'a'", r"expected '\[' at position 8"),
    ("__import__('os') == 1", r"expected .*position 10"),
    ("year > 1; x", r"unexpected ';"),
    ("", r"non-empty condition"),
    ("(" * 500 + "year == 1" + ")" * 500, r"nested more than 100 levels"),
])
def test_malformed_conditions_are_a_clear_error_naming_where(text, message):
    with pytest.raises(WhereError, match=message):
        where_mask(text, COLUMNS)


def test_where_error_is_a_value_error_and_without_columns_says_how_to_attach():
    assert issubclass(WhereError, ValueError)
    with pytest.raises(WhereError, match="attach_metadata"):
        where_mask("year == 1", {})


def test_the_parse_tree_is_plain_data():
    assert parse_where("a == 1 and not b in ['x']") == (
        "and", ("cmp", "a", 0, "==", (1, 5)), ("not", ("in", "b", 15, [("x", 21)])))


@pytest.mark.parametrize("op", ["or", "and"])
def test_long_flat_chains_are_parsed_and_evaluated_without_recursion(op):
    n = 5000
    years = [2019 + i % 5 for i in range(n)]
    text = f" {op} ".join(f"year != {y}" if op == "and" else f"year == {y}" for y in years)
    expected = [0, 1, 2, 3, 4] if op == "or" else []
    assert _rows(text) == expected
    mixed = " or ".join(["year == 2019 and sale == true"] * n)
    assert _rows(mixed) == [0]


def test_chains_keep_precedence_and_before_or():
    assert parse_where("a == 1 or b == 2 and c == 3 or d == 4") == (
        "or", ("cmp", "a", 0, "==", (1, 5)),
        ("and", ("cmp", "b", 10, "==", (2, 15)), ("cmp", "c", 21, "==", (3, 26))),
        ("cmp", "d", 31, "==", (4, 36)))
