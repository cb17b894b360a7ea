"""The world's word-level tokenizer, built offline with `tokenizers`."""

from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from srft.world.lexicon import vocabulary

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer over the world's vocabulary; prepends BOS."""
    specials = [PAD, BOS, EOS, UNK]
    vocab = {token: i for i, token in enumerate(specials + vocabulary())}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
