import pytest

from srft.errors import SrftError
from srft.registry import Registry


def test_a_registered_object_is_found_by_its_name():
    things = Registry[object]("thing")

    @things.register("double")
    def double(x: int) -> int:
        return 2 * x

    assert double(3) == 6  # the decorator hands the function back unchanged
    assert things.get("double") is double


def test_an_unknown_name_names_the_registry_the_name_and_the_known_names():
    things = Registry[int]("benchmark kind")
    things.register("b")(2)
    things.register("a")(1)
    with pytest.raises(SrftError) as caught:
        things.get("c")
    assert str(caught.value) == "unknown benchmark kind 'c' (known: a, b)"
    with pytest.raises(SrftError, match=r"^evaluation.judge: unknown benchmark kind 'c'"):
        things.get("c", key="evaluation.judge")


def test_names_are_sorted_and_values_keep_the_registration_order():
    things = Registry[int]("thing")
    for name, value in (("b", 1), ("c", 2), ("a", 3)):
        things.register(name)(value)
    assert things.names() == ["a", "b", "c"]
    assert things.values() == [1, 2, 3]


def test_a_taken_name_is_not_silently_replaced():
    things = Registry[object]("judge")
    first = object()
    things.register("mine")(first)
    things.register("mine")(first)  # the same object again: a module imported twice
    with pytest.raises(
        SrftError, match=r"^judge 'mine' is already registered; choose another name$"
    ):
        things.register("mine")(object())
    assert things.get("mine") is first
