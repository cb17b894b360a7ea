import pytest

from srft.annotation import build_annotator, build_judge, build_judge_criteria
from srft.arithmetic import judge as arithmetic
from srft.config import load_config
from srft.errors import SrftError
from srft.world import judge as world

PROMPTS = ["name two fruits", "3 + 4 ="]
RESPONSES = ["apple , pear", "7"]


@pytest.mark.parametrize("module", [world, arithmetic], ids=["world", "arithmetic"])
def test_a_judges_name_means_its_module_functions(module):
    name = module.__name__.split(".")[1]
    by_name = load_config(None, [f"evaluation.judge={name}", f"evaluation.judge_criteria={name}"])
    by_path = load_config(
        None,
        [
            f"evaluation.judge={module.__name__}:gold_scores",
            f"evaluation.judge_criteria={module.__name__}:criteria_scores",
        ],
    )
    for config in (by_name, by_path):
        assert build_judge(config)(PROMPTS, RESPONSES) == module.gold_scores(PROMPTS, RESPONSES)
        criteria = build_judge_criteria(config)
        assert criteria(PROMPTS, RESPONSES) == module.criteria_scores(PROMPTS, RESPONSES)


def test_an_annotators_name_means_its_noisy_annotator():
    config = load_config(None, ["annotation.callable=world", "seed=3"])
    expected = world.noisy_annotator(PROMPTS, RESPONSES, seed=3)
    assert build_annotator(config)(PROMPTS, RESPONSES) == expected


def test_no_judge_configured():
    config = load_config(None, ["evaluation.judge=null", "evaluation.judge_criteria=null"])
    assert build_judge(config) is None
    assert build_judge_criteria(config) is None


def test_a_plugins_judge_scores_by_its_criteria(write_plugin):
    write_plugin(
        "terse_judge",
        """
        from srft.judges import JUDGES
        from srft.scoring import WeightedCriteria

        def criteria(prompt, response):
            return {"short": float(len(response.split()) <= 1), "polite": float("please" in response)}

        JUDGES.register("terse")(WeightedCriteria(criteria, {"short": 0.75, "polite": 0.25}))
        """,
    )
    config = load_config(
        None, ["plugins=[terse_judge]", "evaluation.judge=terse", "evaluation.judge_criteria=terse"]
    )
    responses = ["please", "yes please", "no"]
    assert build_judge(config)(["p"] * 3, responses) == [1.0, 0.25, 0.75]
    assert build_judge_criteria(config)(["p"], ["no"]) == [{"short": 1.0, "polite": 0.0}]


def test_a_name_unknown_when_the_judge_is_built():
    config = load_config(None)
    config.evaluation.judge = "wrld"  # past validation, e.g. set in code
    with pytest.raises(SrftError, match=r"^evaluation.judge: unknown judge 'wrld'"):
        build_judge(config)
