#!/usr/bin/env python3
"""make_calib.py — calibration tokens for `qshard quantize --calib`, from text, with the model's tokenizer.

Writes an HDF5 file with one dataset, /input_ids int32 [samples, seqlen] (the 2-D form that qshard uses
as given): `samples` windows of `seqlen` tokens cut at seeded random offsets from one token stream.
The stream is the documents in order, each tokenized without special tokens and followed by EOS (or,
with --join TEXT, the documents joined by TEXT into one text: --join '\\n\\n' is the GPTQ/AWQ convention
for WikiText rows). Each window starts with BOS when the tokenizer has one (Llama 2/3 and Mistral were
trained with BOS first; Qwen2 has none) followed by seqlen-1 stream tokens. Same inputs, same seed ->
same bytes. Written under OUT.tmp.PID and renamed when complete.

  make_calib.py --tokenizer DIR|HUB_ID --text corpus.txt [more.txt ...] --out calib.h5
  make_calib.py --tokenizer DIR|HUB_ID --dataset allenai/c4 --dataset-config en --split train --out calib.h5
  make_calib.py --tokenizer DIR --dataset json --data-files shards/c4-train.*.json.gz --out calib.h5
  options: --samples 128 --seqlen 2048 --seed 0 --max-tokens N (default 8*samples*seqlen) --no-bos

--tokenizer is a model directory (the one given to qshard) or a Hub id. --dataset streams a Hugging Face
dataset (shuffled with --seed in a 10,000-document buffer), so only what is read is downloaded. HF_TOKEN
in the environment is used for gated repositories. Needs h5py, numpy and transformers (fast
tokenizers), or sentencepiece for a directory with only tokenizer.model; --dataset also needs `datasets`.
"""
import argparse
import codecs
import os
import sys
from array import array

# Text files are tokenized in pieces of about 16 M characters cut at line ends (bounded memory; the
# default --max-tokens is reached within the first piece, so piece boundaries rarely matter).
CHUNK_CHARS = 16 << 20
SHUFFLE_BUFFER = 10_000


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokenizer", required=True, help="model directory or Hub id with the tokenizer")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", nargs="+", metavar="FILE", help="UTF-8 text files, one document each")
    src.add_argument("--dataset", metavar="NAME", help="Hugging Face dataset, streamed")
    p.add_argument("--dataset-config", metavar="CFG", help="dataset configuration (e.g. en for allenai/c4)")
    p.add_argument("--data-files", nargs="+", metavar="F", help="files for a file-format --dataset "
                   "(json, parquet, text), e.g. local shards: --dataset json --data-files c4-*.json.gz")
    p.add_argument("--split", default="train", help="dataset split (default train)")
    p.add_argument("--text-field", default="text", help="dataset column holding the text (default text)")
    p.add_argument("--join", metavar="TEXT", help="join documents with TEXT (backslash escapes allowed) "
                   "instead of separating them with EOS")
    p.add_argument("--samples", type=int, default=128, help="windows (default 128)")
    p.add_argument("--seqlen", type=int, default=2048, help="tokens per window (default 2048)")
    p.add_argument("--seed", type=int, default=0, help="seed of the offsets and of the dataset shuffle")
    p.add_argument("--max-tokens", type=int, help="stop reading text once the stream has this many "
                   "tokens (default 8*samples*seqlen)")
    p.add_argument("--no-bos", action="store_true", help="do not put BOS first in each window")
    p.add_argument("--out", required=True, help="output HDF5 file")
    a = p.parse_args(argv)
    if a.samples < 1 or a.seqlen < 2:
        p.error("--samples must be >= 1 and --seqlen >= 2")
    if a.max_tokens is None:
        a.max_tokens = 8 * a.samples * a.seqlen
    if a.join is not None:
        a.join = codecs.decode(a.join, "unicode_escape")
    return a


def file_pieces(path):
    """A text file as pieces of about CHUNK_CHARS, cut at line ends."""
    try:
        with open(path, encoding="utf-8") as f:
            cur, size = [], 0
            for line in f:
                cur.append(line)
                size += len(line)
                if size >= CHUNK_CHARS:
                    yield "".join(cur)
                    cur, size = [], 0
            if cur:
                yield "".join(cur)
    except (OSError, UnicodeDecodeError) as e:
        sys.exit(f"make_calib: {path}: cannot read as UTF-8 text: {e}")


def text_file_docs(paths):
    """Each file is one document, read lazily in pieces."""
    for path in paths:
        yield file_pieces(path)


def dataset_docs(a):
    """Yields each non-empty dataset row as a one-piece document, in a seeded shuffled order."""
    try:
        import datasets
    except ImportError:
        sys.exit("make_calib: --dataset needs the `datasets` package (pip install datasets)")
    ds = datasets.load_dataset(a.dataset, a.dataset_config, data_files=a.data_files, split=a.split,
                               streaming=True)
    ds = ds.shuffle(seed=a.seed, buffer_size=SHUFFLE_BUFFER)
    for row in ds:
        if a.text_field not in row:
            sys.exit(f"make_calib: dataset {a.dataset}: no column '{a.text_field}' (have {sorted(row)})")
        if row[a.text_field].strip():
            yield [row[a.text_field]]


class Tokenizer:
    """encode(text) -> ids without special tokens; bos, eos (None when absent); size (number of ids).
    A directory with tokenizer.model and no tokenizer.json is read with SentencePiece itself: without
    a tokenizer.json, transformers converts the SentencePiece model, and that conversion need not
    give the ids the model was trained on. Everything else goes through transformers' AutoTokenizer."""

    def __init__(self, name):
        spm_file = os.path.join(name, "tokenizer.model")
        if os.path.isfile(spm_file) and not os.path.isfile(os.path.join(name, "tokenizer.json")):
            import sentencepiece
            sp = sentencepiece.SentencePieceProcessor(model_file=spm_file)
            self.encode = lambda text: sp.encode(text)
            self.bos = sp.bos_id() if sp.bos_id() >= 0 else None
            self.eos = sp.eos_id() if sp.eos_id() >= 0 else None
            self.size, self.kind = sp.get_piece_size(), "sentencepiece"
        else:
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained(name)
            self.encode = lambda text: tok(text, add_special_tokens=False)["input_ids"]
            self.bos, self.eos, self.size, self.kind = tok.bos_token_id, tok.eos_token_id, len(tok), "transformers"


def token_stream(tok, docs, a):
    """Concatenates the documents' tokens (EOS after each, or --join between them) up to a.max_tokens."""
    stream = array("q")  # int64 ids, 8 bytes each (a list of ints would take ~4x more)
    for i, pieces in enumerate(docs):
        for j, piece in enumerate(pieces):
            if a.join is not None and i > 0 and j == 0:
                piece = a.join + piece
            stream.extend(tok.encode(piece))
            if len(stream) >= a.max_tokens:
                return stream
        if a.join is None and tok.eos is not None:
            stream.append(tok.eos)
    return stream


def cut_windows(stream, bos, a):
    """[samples, seqlen] int32: BOS (when used) then seqlen-1 stream tokens at seeded offsets."""
    import numpy as np
    body = a.seqlen - (1 if bos is not None else 0)
    if len(stream) < body:
        sys.exit(f"make_calib: the text gives only {len(stream)} tokens; a window needs {body}")
    ids = np.frombuffer(stream, dtype=np.int64)
    rng = np.random.default_rng(a.seed)
    offsets = rng.integers(0, len(ids) - body + 1, size=a.samples)
    out = np.empty((a.samples, a.seqlen), dtype=np.int32)
    for r, off in enumerate(offsets):
        row = ids[off:off + body]
        out[r] = row if bos is None else np.concatenate(([bos], row))
    return out


def write_h5(path, ids, attrs):
    import h5py
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("input_ids", data=ids)
            for k, v in attrs.items():
                f.attrs[k] = v
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def main(argv):
    a = parse_args(argv)
    tok = Tokenizer(a.tokenizer)
    docs = text_file_docs(a.text) if a.text else dataset_docs(a)
    stream = token_stream(tok, docs, a)
    if stream and max(stream) >= tok.size:
        sys.exit(f"make_calib: token id {max(stream)} >= the tokenizer's {tok.size} ids")
    bos = None if a.no_bos else tok.bos
    ids = cut_windows(stream, bos, a)
    source = " ".join(a.text) if a.text else f"{a.dataset}:{a.dataset_config or ''}:{a.split}"
    write_h5(a.out, ids, {"tokenizer": f"{a.tokenizer} ({tok.kind})", "source": source, "seed": a.seed,
                          "stream_tokens": len(stream), "bos": -1 if bos is None else bos})
    print(f"make_calib: {a.out}: /input_ids int32 [{a.samples}, {a.seqlen}] from {len(stream)} tokens "
          f"of {source} (seed {a.seed}, BOS {'none' if bos is None else bos})")


if __name__ == "__main__":
    main(sys.argv[1:])
