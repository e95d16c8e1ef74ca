#!/usr/bin/env python3
"""tok_compare.py — qshard's C tokenizer (tests/test_tokenizer.c) against the Python packages, id for id.

  tok_compare.py TEST_TOKENIZER DATA_DIR WORK_DIR

Tokenizers: the shared gutenberg28M and Llama-2 SentencePiece BPE models; SentencePiece models trained
here on the shared text (unigram with the default nmt_nfkc normalizer, a user-defined piece and no byte
fallback; BPE with identity normalization, byte fallback, split digits, kept whitespace, whitespace-only
pieces and a user-defined piece; unigram with byte fallback and the whitespace as suffix); tokenizer.json
files trained here by `tokenizers` (byte-level BPE with Llama-3's Split regex and ignore_merges, and GPT-2's
plain ByteLevel), each with special and normal added tokens; and stories260K's llama2.c tok512.bin
against a Python transcription of llama2.c's encode(). Texts: the first 200 KB (cut at a line end) of
wiki.test.raw, ptb.valid.txt and tinystories_sample.txt, plus edge cases (spaces, newlines, NFKC forms,
scripts without spaces, emoji, digits, special tokens in the text). Exit 0 when every id matches.
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
CASES = ["", " ", "   ", "a", " a", "a ", "  two  spaces  inside  ", "\n", "line one\nline two\n\n\nthree",
         "\tTab\tseparated\t", "x\r\ny", "héllo wörld — «quotes» ‘single’", "ﬁ ﬂ ＡＢＣ ① ㎏ Å",
         "日本語のテキストです。", "emoji 🤗🤗 and 👩‍👩‍👧", "digits 1234567890 3.14159 1,000,000",
         "a\u2581b \u2581", "<s> </s> <unk> <sep>", "<|begin_of_text|>Hello<|end_of_text|> <|eot|>x",
         "<|endoftext|>qshard qshardqshard", "it's we'll THEY'RE I'M", "   leading", "trailing   ",
         "mixed\u00a0nbsp\u2009thin\u3000ideographic", "zero\u200bwidth", "ascii ~!@#$%^&*()_+{}|:<>?",
         "Ωμέγα Кириллица עברית العربية", "a" * 300, "ab " * 200]


def text_head(path, limit=200_000):
    with open(path, encoding="utf-8", newline="") as f:
        t = f.read(limit)
    return t[:t.rfind("\n") + 1] if "\n" in t else t


def c_encode(tool, tok, text, work):
    path = os.path.join(work, "text.txt")
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    out = os.path.join(work, "ids.i32")
    subprocess.run([tool, "encode", tok, path, out], check=True)
    return np.fromfile(out, dtype="<i4").tolist()


def c_cases(tool, tok, cases, work):
    src, dst = os.path.join(work, "cases.json"), os.path.join(work, "cases_out.json")
    with open(src, "w", encoding="utf-8") as f:
        json.dump(cases, f)
    subprocess.run([tool, "cases", tok, src, dst], check=True)
    with open(dst) as f:
        return json.load(f)


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def llama2c_encode(vocab, scores, lookup, text):
    """llama2.c run.c encode(t, text, bos=0, eos=0), transcribed (UTF-8 bytes in, ids out)."""
    ids = []
    if text:
        ids.append(lookup[b" "])
    buf = b""
    for i, c in enumerate(text):
        if c & 0xC0 != 0x80:
            buf = b""
        buf += bytes([c])
        if i + 1 < len(text) and text[i + 1] & 0xC0 == 0x80 and len(buf) < 4:
            continue
        if buf in lookup:
            ids.append(lookup[buf])
        else:
            ids.extend(b + 3 for b in buf)
        buf = b""
    while True:
        best, best_id, best_i = -1e10, -1, -1
        for i in range(len(ids) - 1):
            j = lookup.get(vocab[ids[i]] + vocab[ids[i + 1]], -1)
            if j != -1 and scores[j] > best:
                best, best_id, best_i = scores[j], j, i
        if best_i == -1:
            return ids
        ids[best_i:best_i + 2] = [best_id]


def read_tok512(path):
    data = open(path, "rb").read()
    pos, vocab, scores = 4, [], []
    while pos < len(data):
        score, n = struct.unpack_from("<fi", data, pos)
        vocab.append(data[pos + 8:pos + 8 + n])
        scores.append(np.float32(score))
        pos += 8 + n
    lookup = {}
    for i, v in enumerate(vocab):  # ids 0-2 are "<unk>", "\n<s>\n", "\n</s>\n": never formed from text
        if i > 2 and v:
            lookup.setdefault(v, i)
    return vocab, scores, lookup


def train_spm(work, text_file):
    import sentencepiece as spm
    common = dict(input=text_file, vocab_size=1000, minloglevel=2, hard_vocab_limit=False, num_threads=1,
                  character_coverage=0.9995)
    spm.SentencePieceTrainer.train(model_prefix=os.path.join(work, "uni"), model_type="unigram",
                                   user_defined_symbols=["<sep>"], **common)
    spm.SentencePieceTrainer.train(model_prefix=os.path.join(work, "bpe"), model_type="bpe",
                                   normalization_rule_name="identity", byte_fallback=True, split_digits=True,
                                   remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
                                   user_defined_symbols=["qq"], **common)
    spm.SentencePieceTrainer.train(model_prefix=os.path.join(work, "unisuf"), model_type="unigram",
                                   byte_fallback=True, treat_whitespace_as_suffix=True,
                                   normalization_rule_name="nfkc", **common)
    return [os.path.join(work, n + ".model") for n in ("uni", "bpe", "unisuf")]


def train_hf(work, text_file):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    out = []
    for kind in ("llama3", "gpt2"):
        tok = Tokenizer(models.BPE(ignore_merges=kind == "llama3"))
        if kind == "llama3":
            tok.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
            specials = ["<|begin_of_text|>", "<|end_of_text|>"]
        else:
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            specials = ["<|endoftext|>"]
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=specials, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train([text_file], trainer)
        tok.add_special_tokens([AddedToken("<|eot|>", special=True, normalized=False)])
        tok.add_tokens([AddedToken("qshard", normalized=True), AddedToken(" the cat", normalized=False)])
        if kind == "llama3":
            bos = specials[0]
            tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                               special_tokens=[(bos, tok.token_to_id(bos))])
        else:
            tok.post_processor = processors.ByteLevel(trim_offsets=False)
        d = os.path.join(work, "hf-" + kind)
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"))
        out.append(os.path.join(d, "tokenizer.json"))
    return out


def main(tool, data, work):
    try:
        import sentencepiece as spm
        from tokenizers import Tokenizer
    except ImportError as e:
        print(f"SKIP: {e} (pip install -r tests/py/requirements-tok.txt; scripts/test.sh does)")
        return 77
    os.makedirs(work, exist_ok=True)
    texts = {n: text_head(os.path.join(data, "text", n))
             for n in ("wiki.test.raw", "ptb.valid.txt", "tinystories_sample.txt")}
    train_file = os.path.join(work, "train.txt")
    with open(train_file, "w", encoding="utf-8") as f:
        f.write(texts["tinystories_sample.txt"] + texts["wiki.test.raw"][:100_000])
    encoders = {}
    for path in [os.path.join(data, "gutenberg28M", "tokenizer.model"),
                 os.path.join(data, "tokenizers", "llama2-tokenizer.model")] + train_spm(work, train_file):
        sp = spm.SentencePieceProcessor(model_file=path)
        encoders[path] = lambda t, sp=sp: sp.encode(t)
    for path in train_hf(work, train_file):
        hf = Tokenizer.from_file(path)
        encoders[path] = lambda t, hf=hf: hf.encode(t, add_special_tokens=False).ids
    tok512 = os.path.join(data, "stories260K", "tok512.bin")
    vocab, scores, lookup = read_tok512(tok512)
    encoders[tok512] = lambda t: llama2c_encode(vocab, scores, lookup, t.encode("utf-8"))
    # Per line: llama2.c (the shared streams are made so; the transcription is quadratic) and unigram. A
    # unigram Viterbi over a whole 200 KB text decides near-ties between path sums of ~1e5 by rounding: its
    # ids follow the wheel for ~40 k pieces, then can differ (tokenizer_spm.c spm_unigram).
    per_line = {tok512, os.path.join(work, "uni.model"), os.path.join(work, "unisuf.model")}
    bad = 0
    for path, enc in encoders.items():
        name = os.path.relpath(path, work) if path.startswith(work) else os.path.relpath(path, data)
        for tname, text in texts.items():
            if path in per_line:
                if path == tok512:  # the O(n^2) transcription: 400 lines
                    text = "\n".join(text.split("\n")[:400])
                want = [i for line in text.split("\n") for i in enc(line)]
                got = [i for case in c_cases(tool, path, text.split("\n"), work) for i in case]
            else:
                want, got = enc(text), c_encode(tool, path, text, work)
            ok = want == got
            bad += not ok
            line = f"{'ok  ' if ok else 'FAIL'} {name:38s} {tname:24s} {len(want):7d} ids{' (per line)' if path in per_line else ''}"
            if not ok:
                i = first_diff(want, got)
                line += f"  first difference at {i}: python {want[i:i + 6]} C {got[i:i + 6]} (C has {len(got)})"
            print(line, flush=True)
        got = c_cases(tool, path, CASES, work)
        wrong = [(c, enc(c), g) for c, g in zip(CASES, got) if enc(c) != g]
        bad += len(wrong)
        print(f"{'ok  ' if not wrong else 'FAIL'} {name:38s} {len(CASES)} edge cases" +
              "".join(f"\n     {c!r}: python {w} C {g}" for c, w, g in wrong[:5]), flush=True)
    # byte-level BPE takes UTF-8 text only: refused, naming the byte
    bad_text = os.path.join(work, "bad.txt")
    with open(bad_text, "wb") as f:
        f.write(b"abc \xff def")
    r = subprocess.run([tool, "encode", os.path.join(work, "hf-gpt2", "tokenizer.json"), bad_text,
                        os.path.join(work, "bad.i32")], capture_output=True, text=True)
    refused = r.returncode == 1 and "text at byte 4: UTF-8 error" in r.stderr
    bad += not refused
    print(f"{'ok  ' if refused else 'FAIL'} invalid UTF-8 refused by byte-level BPE: {r.stderr.strip()[-90:]}")
    print("tok_compare: every id matches" if not bad else f"tok_compare: {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
