"""srft's own judges and annotators are registered by name before any plugin can take one."""

import pytest

from srft.arithmetic import judge as arithmetic
from srft.errors import SrftError
from srft.judges import ANNOTATORS, JUDGES
from srft.world import judge as world


def test_srfts_names():
    assert JUDGES.names() == ["arithmetic", "world"]
    assert JUDGES.get("world") is world.JUDGE
    assert JUDGES.get("arithmetic") is arithmetic.JUDGE
    assert ANNOTATORS.get("world") is world.noisy_annotator
    assert ANNOTATORS.get("arithmetic") is arithmetic.noisy_annotator


def test_a_taken_name_is_refused(write_plugin):
    with pytest.raises(SrftError, match="judge 'world' is already registered"):
        JUDGES.register("world")(object())
