from srft.data.sft import encode_completion, encode_prompt
from srft.world.tokenizer import build_tokenizer


def test_a_prompt_without_chat_template_is_tokenised_as_it_is():
    tokenizer = build_tokenizer()
    prompt = "kim says : name two fruits . answer :"
    assert encode_prompt(tokenizer, prompt, 64) == tokenizer(prompt)["input_ids"]
    assert encode_prompt(tokenizer, prompt, 3) == tokenizer(prompt)["input_ids"][-3:]


def test_a_chat_template_wraps_the_prompt_as_a_user_turn():
    tokenizer = build_tokenizer()
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }} says : {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}answer :{% endif %}"
    )
    ids = encode_prompt(tokenizer, "name two fruits .", 64)
    expected = tokenizer("user says : name two fruits . answer :", add_special_tokens=False)
    assert ids == expected["input_ids"]


def test_a_completion_ends_with_eos_within_its_length():
    tokenizer = build_tokenizer()
    ids = encode_completion(tokenizer, "apple , pear .", 3)
    assert ids == tokenizer("apple ,", add_special_tokens=False)["input_ids"] + [
        tokenizer.eos_token_id
    ]


def test_truncation_is_counted_where_tokens_are_cut():
    from srft.data.sft import encode_sft, prompts_truncated

    tokenizer = build_tokenizer()
    # "name one fruits" is BOS + 3 words: 4 tokens
    assert prompts_truncated(tokenizer, ["name one fruits", "name one"], 4) == 0
    assert prompts_truncated(tokenizer, ["name one fruits", "name one"], 3) == 1
    rows = [
        {"prompt": "name one", "completion": "apple ."},  # 3 + (2 + EOS)
        {"prompt": "name one fruits", "completion": "apple ."},  # the prompt is cut
        {"prompt": "name one", "completion": "apple , pear ."},  # the completion is cut
    ]
    examples = encode_sft(rows, tokenizer, max_prompt=3, max_response=3)
    assert [e.truncated for e in examples] == [False, True, True]
    assert [len(e.input_ids) for e in examples] == [6, 6, 6]
