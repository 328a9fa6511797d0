"""The shared setting rules of tabular.validation: types, ranges, one message format."""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tabular.validation import (
    SettingsError,
    check_bool,
    check_choice,
    check_gamma,
    check_int,
    check_multiple,
    check_path,
    check_real,
    check_size,
    check_type,
    invalid,
)

INF, NAN = float("inf"), float("nan")


def message_of(check, *args, **kwargs) -> str:
    with pytest.raises(SettingsError) as error:
        check(*args, **kwargs)
    return str(error.value)


def test_the_message_names_the_setting_the_rule_and_the_value_and_is_a_value_error():
    error = invalid("--n-envs", "an integer >= 1", 0)
    assert isinstance(error, ValueError) and str(error) == "--n-envs: must be an integer >= 1, got 0"


# --- integers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [3, np.int64(3), np.int8(3), np.uint16(3)])
def test_python_and_numpy_integers_are_integers(value):
    result = check_int("n", value, 1)
    assert result == 3 and type(result) is int


@pytest.mark.parametrize(
    "value", [True, False, np.True_, 3.0, 2.5, NAN, INF, "3", None, Fraction(3), np.float64(3.0), np.array([3])]
)
def test_booleans_floats_strings_and_arrays_are_not_integers(value):
    assert message_of(check_int, "n", value, 0) == f"n: must be an integer >= 0, got {value!r}"


@pytest.mark.parametrize(
    ("bounds", "bad", "rule"),
    [
        ({"minimum": 1}, 0, "an integer >= 1"),
        ({"maximum": 3}, 4, "an integer <= 3"),
        ({"minimum": 1, "maximum": 3}, 4, "an integer in [1, 3]"),
        ({"minimum": 1, "maximum": 3}, 0, "an integer in [1, 3]"),
        ({}, 2.5, "an integer"),
    ],
)
def test_an_integer_out_of_its_range_is_refused_with_the_range(bounds, bad, rule):
    assert message_of(check_int, "k", bad, **bounds) == f"k: must be {rule}, got {bad!r}"
    assert check_int("k", 3, **bounds) == 3


def test_a_config_written_to_json_refuses_numpy_integers():
    assert (
        message_of(check_int, "--seed", np.int64(5), 0, numpy=False)
        == "--seed: must be an integer >= 0, got np.int64(5)"
    )


@pytest.mark.parametrize(("value", "size"), [(3, 3), (3.0, 3), (np.float32(2.0), 2), (np.int64(0), 0)])
def test_a_size_may_be_an_integral_float(value, size):
    result = check_size("n_states", value)
    assert result == size and type(result) is int


@pytest.mark.parametrize("value", [2.5, NAN, INF, -1, -1.0, True, np.True_, "2"])
def test_a_size_is_never_truncated_negative_or_boolean(value):
    assert message_of(check_size, "n_states", value) == f"n_states: must be an integer >= 0, got {value!r}"


# --- real numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.5), np.float64(0.25), np.int64(1), Fraction(1, 2)])
def test_python_and_numpy_reals_are_numbers(value):
    result = check_real("x", value, 0.0, 1.0)
    assert result == float(value) and type(result) is float


@pytest.mark.parametrize("value", [NAN, np.float64(NAN), True, np.False_, "0.5", None, 0.5 + 0j, np.array([0.5])])
def test_nan_booleans_strings_and_complex_are_not_numbers(value):
    assert message_of(check_real, "x", value, 0.0, 1.0) == f"x: must be a number in [0, 1], got {value!r}"


@pytest.mark.parametrize("value", [INF, -INF, np.float64(INF)])
def test_infinity_is_refused_even_without_a_bound(value):
    assert message_of(check_real, "lr", value) == f"lr: must be a number in (-inf, inf), got {value!r}"
    assert (
        message_of(check_real, "lr", value, 0.0, INF, low_open=True)
        == f"lr: must be a number in (0, inf), got {value!r}"
    )


@pytest.mark.parametrize(
    ("open_ends", "rule", "refused", "accepted"),
    [
        ({}, "[0, 1]", (-0.1, 1.1), (0.0, 1.0)),
        ({"low_open": True}, "(0, 1]", (0.0, 1.1), (1e-300, 1.0)),
        ({"high_open": True}, "[0, 1)", (-1e-300, 1.0), (0.0, 0.999)),
        ({"low_open": True, "high_open": True}, "(0, 1)", (0.0, 1.0), (0.5,)),
    ],
)
def test_open_and_closed_ends(open_ends, rule, refused, accepted):
    for value in refused:
        assert (
            message_of(check_real, "tau", value, 0.0, 1.0, **open_ends)
            == f"tau: must be a number in {rule}, got {value!r}"
        )
    for value in accepted:
        assert check_real("tau", value, 0.0, 1.0, **open_ends) == value


def test_a_config_written_to_json_refuses_numpy_floats():
    assert message_of(check_real, "--lr", np.float64(0.1), 0.0, INF, low_open=True, numpy=False) == (
        "--lr: must be a number in (0, inf), got np.float64(0.1)"
    )


@pytest.mark.parametrize(("gamma", "accepted"), [(0.0, True), (0.99, True), (np.float32(0.5), True), (1.0, False)])
def test_gamma_lies_in_the_half_open_unit_interval(gamma, accepted):
    if accepted:
        assert check_gamma(gamma) == float(gamma)
    else:
        assert message_of(check_gamma, gamma) == f"gamma: must be a number in [0, 1), got {gamma!r}"


# --- booleans, choices, multiples, paths, types ---------------------------------------------------------


def test_only_true_and_false_are_booleans():
    assert check_bool("--progress", True) is True and check_bool("--progress", np.False_) is False
    for value in (1, 0, "true", None, np.int64(1)):
        assert message_of(check_bool, "--progress", value) == f"--progress: must be true or false, got {value!r}"
    assert (
        message_of(check_bool, "--progress", np.True_, numpy=False) == "--progress: must be true or false, got np.True_"
    )


@pytest.mark.parametrize("value", ["medium", "", None, 1, ["small"], np.array(["small"])])
def test_a_choice_must_be_one_of_the_choices(value):
    assert message_of(check_choice, "--profile", value, ("small", "full")) == (
        f"--profile: must be one of small, full, got {value!r}"
    )
    assert check_choice("--profile", np.str_("full"), ("small", "full")) == "full"


@pytest.mark.parametrize("value", [75, 0, -50, 100.0, True, None])
def test_a_multiple_must_be_a_positive_integer_multiple(value):
    assert message_of(check_multiple, "--eval-every", value, "--log-every", 50) == (
        f"--eval-every: must be a positive multiple of --log-every=50, got {value!r}"
    )
    assert check_multiple("--eval-every", np.int64(100), "--log-every", 50) == 100


@pytest.mark.parametrize("value", ["", None, Path("data"), 3])
def test_a_path_is_a_non_empty_string(value):
    assert message_of(check_path, "--data-dir", value) == f"--data-dir: must be a non-empty path, got {value!r}"
    assert check_path("--data-dir", "data") == "data"


def test_a_wrong_type_is_named_by_its_type_not_its_value():
    assert message_of(check_type, "dataset", np.zeros(10**6), dict, "a dict") == "dataset: must be a dict, got ndarray"
    assert check_type("dataset", {}, dict, "a dict") == {}
