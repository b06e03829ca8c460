"""Text conditioning: a small hashed-n-gram encoder (tiny/small) and frozen umT5 (Wan 2.2).

Why hashed n-grams for the CPU configs: umT5-XXL has ~5.7B parameters, far too slow to run per
step on a CPU and too big to fine-tune; a table of learned embeddings, one per training
instruction, cannot say anything about a phrasing it has not seen. Hashing words, word bigrams
and character trigrams into a fixed bucket table shares parameters between phrasings that share
words or word pieces ("open the drawer" / "please open drawer" / "opening drawers"), and one small
transformer layer over those tokens lets word order and context matter. It does not know
synonyms it never saw; that is the price of having no pretrained language model.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import torch
from torch import nn

from actionimages.errors import ActionImagesError

_WORD = re.compile(r"[a-z0-9]+")
PAD = 0  # bucket 0 is padding; hashed ids live in 1..num_buckets-1


def _bucket(text: str, num_buckets: int) -> int:
    # crc32 rather than hash(): Python's hash is salted per process (breaks multi-process training).
    return 1 + zlib.crc32(text.encode("utf-8")) % (num_buckets - 1)


def tokenize(instruction: str, num_buckets: int, max_tokens: int, max_grams: int = 8) -> tuple[list, list]:
    """Hash one instruction into per-token id lists.

    Returns ``(word_ids, gram_ids)``: ``word_ids`` (n,) the id of each word (plus one id per
    word bigram appended after the words), ``gram_ids`` (n, max_grams) the character-trigram ids
    of each token (0-padded). ``n <= max_tokens``; an empty instruction gives n = 0.
    """
    if not isinstance(instruction, str):
        raise ActionImagesError(f"instruction must be a str, got {type(instruction).__name__}")
    words = _WORD.findall(instruction.lower())
    units = [("w", w) for w in words] + [("b", f"{a} {b}") for a, b in zip(words, words[1:], strict=False)]
    units = units[:max_tokens]
    word_ids, gram_ids = [], []
    for kind, unit in units:
        word_ids.append(_bucket(f"{kind}:{unit}", num_buckets))
        padded = f"#{unit}#"
        grams = [_bucket(f"c:{padded[i : i + 3]}", num_buckets) for i in range(len(padded) - 2)][:max_grams]
        gram_ids.append(grams + [PAD] * (max_grams - len(grams)))
    return word_ids, gram_ids


class HashedTextEncoder(nn.Module):
    """Instruction strings -> ``(B, max_tokens + 1, dim)`` embeddings (+ key padding mask).

    The first output token is a learned summary token, always present, so an empty instruction
    (used for classifier-free guidance) maps to one learned "no text" token.
    """

    def __init__(
        self, dim: int, num_buckets: int = 4096, num_layers: int = 1, num_heads: int = 4, max_tokens: int = 24
    ) -> None:
        super().__init__()
        if num_buckets < 2:
            raise ActionImagesError("num_buckets must be >= 2")
        self.dim, self.num_buckets, self.max_tokens = dim, num_buckets, max_tokens
        self.word = nn.Embedding(num_buckets, dim, padding_idx=PAD)
        self.gram = nn.Embedding(num_buckets, dim, padding_idx=PAD)
        self.kind = nn.Embedding(2, dim)  # word vs bigram token
        self.pos = nn.Embedding(max_tokens + 1, dim)
        self.summary = nn.Parameter(torch.randn(dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, num_heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        for emb in (self.word, self.gram):
            nn.init.normal_(emb.weight, std=0.02)
            with torch.no_grad():
                emb.weight[PAD].zero_()

    def ids(self, instructions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise a batch: ``word`` (B, N), ``gram`` (B, N, G), ``is_bigram`` (B, N), ``mask`` (B, N)."""
        if isinstance(instructions, str):
            raise ActionImagesError("instructions must be a sequence of str, not one str")
        toks = [tokenize(s, self.num_buckets, self.max_tokens) for s in instructions]
        n = self.max_tokens
        word = torch.zeros(len(toks), n, dtype=torch.long)
        gram = torch.zeros(len(toks), n, 8, dtype=torch.long)
        is_bigram = torch.zeros(len(toks), n, dtype=torch.long)
        mask = torch.zeros(len(toks), n, dtype=torch.bool)
        for i, ((w, g), s) in enumerate(zip(toks, instructions, strict=True)):
            k = len(w)
            if k:
                word[i, :k] = torch.tensor(w)
                gram[i, :k] = torch.tensor(g)
                mask[i, :k] = True
                n_words = len(_WORD.findall(s.lower()))
                is_bigram[i, n_words:k] = 1
        return {"word": word, "gram": gram, "is_bigram": is_bigram, "mask": mask}

    def forward(self, instructions: Sequence[str] | dict[str, torch.Tensor]) -> torch.Tensor:
        """Embeddings (B, max_tokens + 1, dim); padded positions are zeroed."""
        ids = instructions if isinstance(instructions, dict) else self.ids(instructions)
        dev = self.word.weight.device
        word, gram = ids["word"].to(dev), ids["gram"].to(dev)
        mask = ids["mask"].to(dev)
        gram_count = (gram != PAD).sum(-1, keepdim=True).clamp(min=1)
        tok = self.word(word) + self.gram(gram).sum(-2) / gram_count + self.kind(ids["is_bigram"].to(dev))
        b, n = word.shape
        x = torch.cat([self.summary.expand(b, 1, -1), tok], 1) + self.pos.weight[: n + 1]
        keep = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=dev), mask], 1)
        x = self.encoder(x, src_key_padding_mask=~keep)
        return self.norm(x) * keep[..., None]


class UMT5TextEncoder(nn.Module):
    """Frozen umT5 encoder + tokenizer from a diffusers Wan folder; Wan's zero padding to ``max_tokens``."""

    def __init__(self, encoder: nn.Module, tokenizer, max_tokens: int = 512) -> None:
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens

    @classmethod
    def from_pretrained(cls, root: str, max_tokens: int = 512, dtype: torch.dtype = torch.float32):
        from transformers import AutoTokenizer, UMT5EncoderModel

        enc = UMT5EncoderModel.from_pretrained(str(root), subfolder="text_encoder", torch_dtype=dtype)
        tok = AutoTokenizer.from_pretrained(str(root), subfolder="tokenizer")
        return cls(enc, tok, max_tokens)

    @torch.no_grad()
    def forward(self, instructions: Sequence[str]) -> torch.Tensor:
        """Embeddings (B, max_tokens, d_model), zero beyond each prompt's length."""
        t = self.tokenizer(
            list(instructions),
            padding="max_length",
            max_length=self.max_tokens,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        dev = next(self.encoder.parameters()).device
        ids, mask = t.input_ids.to(dev), t.attention_mask.to(dev)
        out = self.encoder(ids, mask).last_hidden_state
        return out * mask[..., None].to(out.dtype)
