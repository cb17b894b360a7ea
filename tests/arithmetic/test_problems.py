import json

from srft.arithmetic.problems import Problem, all_problems, parse_problem, write_task


def test_problems_round_trip_through_their_prompt():
    problem = Problem(14, "-", 9)
    assert problem.answer == 5
    assert parse_problem(problem.prompt) == problem
    assert parse_problem("Name three fruits.") is None


def test_all_problems_counts_sums_and_non_negative_differences():
    # sums of 0..2 x 0..2: 9; differences a - b with a >= b: 6
    problems = all_problems(2)
    assert len(problems) == 15
    assert min(p.answer for p in problems) == 0


def test_write_task_holds_out_the_evaluation_problems(tmp_path):
    paths = write_task(tmp_path, seed=1, largest=6, n_sft=10, n_eval=8)
    rows = {name: [json.loads(line) for line in path.open()] for name, path in paths.items()}
    held_out = {r["prompt"] for r in rows["eval_prompts"]}
    assert len(held_out) == 8
    assert held_out.isdisjoint(r["prompt"] for r in rows["prompts"])
    assert held_out.isdisjoint(r["prompt"] for r in rows["sft"])
    styles = set()
    for row in rows["sft"]:
        problem = parse_problem(row["prompt"])
        assert row["completion"] in (str(problem.answer), problem.worked)
        styles.add(row["completion"] == problem.worked)
    assert styles == {True, False}
    for row in rows["capitals"]:
        assert len(row["choices"]) == 4 and 0 <= row["answer"] < 4
    assert write_task(tmp_path / "again", seed=1, largest=6, n_sft=10, n_eval=8)
    assert (tmp_path / "again" / "prompts.jsonl").read_text() == paths["prompts"].read_text()
