#!/usr/bin/env bash
# tests/fuzz/seed.sh DATA_DIR OUT_DIR [BUILD_DIR] — seed corpora of the fuzz harnesses (tests/fuzz/*.c),
# one folder per target under OUT_DIR, built at run time from the shared data (never copied into the
# repo) and from files qshard itself writes. Big files are cut down where the result stays a valid file
# of its kind: safetensors files keep every tensor name, dtype and rank with each dimension cut to at
# most 3 (python3), SentencePiece models keep their first 300 pieces and their specs (python3).
# BUILD_DIR (a QS_FUZZ build; tests/fuzz/run.sh passes it) adds the files of fuzz_seedgen (GGUF model
# and imatrix; resume state, x file and small token files for hdf5-raw/ and state-raw/; the manifest of
# fuzz_manifest's output directory) and of `qshard quantize` (a GPTQ checkpoint of stories260K, and its
# qshard_manifest.json). fuzz_hdf5 and fuzz_state read descriptions of HDF5 files (tests/fuzz/fuzz_h5.h
# says why): their seeds are short byte strings; real .h5 files go to hdf5-raw/ and state-raw/, for
# runs with QS_FUZZ_H5_RAW=1.
# Each seed starts with the mode byte its harness reads (see the harness's top comment).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DATA_DIR OUT_DIR [BUILD_DIR]" >&2; exit 2; }
DATA=$1 OUT=$2 BUILD=${3:-}
[ -d "$DATA/stories260K" ] || { echo "seed.sh: $DATA has no stories260K/ (see shared/data/README.md)" >&2; exit 2; }
SEP=$'\n--qsfuzz-part--\n' # QS_FUZZ_SEP of fuzz_common.h
WORK=$OUT/.work
mkdir -p "$OUT" "$WORK"
for t in safetensors config hdf5 gguf vocab state tokenizer manifest; do mkdir -p "$OUT/$t"; done

# seed TARGET NAME MODE_BYTE FILE...: OUT/TARGET/NAME = mode byte (octal escape, "" for none), then the
# files joined by SEP.
seed() {
  local target=$1 name=$2 mode=$3
  shift 3
  {
    [ -n "$mode" ] && printf "\\$mode"
    local first=1
    for f in "$@"; do
      [ $first -eq 1 ] || printf '%s' "$SEP"
      first=0
      cat "$f"
    done
  } > "$OUT/$target/$name"
}

have_py=0
command -v python3 > /dev/null && have_py=1

# shrink_st IN OUT: a safetensors file with the same tensors (names, dtypes, ranks, metadata) but each
# dimension cut to at most 3, holding the first bytes of each tensor's data.
shrink_st() {
  python3 - "$1" "$2" << 'PY'
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
raw = open(src, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
buf = raw[8 + n:]
size = {'F64': 8, 'I64': 8, 'U64': 8, 'F32': 4, 'I32': 4, 'U32': 4, 'F16': 2, 'BF16': 2, 'I16': 2, 'U16': 2}
out, data, pos = {}, b'', 0
for name, t in hdr.items():
    if name == '__metadata__':
        out[name] = t
        continue
    shape = [min(d, 3) for d in t['shape']]
    nb = size.get(t['dtype'], 1)
    for d in shape:
        nb *= d
    b0 = t['data_offsets'][0]
    data += buf[b0:b0 + nb]
    out[name] = {'dtype': t['dtype'], 'shape': shape, 'data_offsets': [pos, pos + nb]}
    pos += nb
h = json.dumps(out, separators=(',', ':')).encode()
h += b' ' * (-len(h) % 8)
open(dst, 'wb').write(struct.pack('<Q', len(h)) + h + data)
PY
}

# shrink_spm IN OUT: a SentencePiece ModelProto with its first 300 pieces (field 1) and every other field
# (the normalizer's precompiled_charsmap left out).
shrink_spm() {
  python3 - "$1" "$2" << 'PY'
import sys
raw = open(sys.argv[1], 'rb').read()
def varint(b, i):
    v = s = 0
    while True:
        c = b[i]; i += 1
        v |= (c & 0x7f) << s; s += 7
        if c < 0x80:
            return v, i
def enc(v):
    b = bytearray()
    while v >= 0x80:
        b.append(v & 0x7f | 0x80); v >>= 7
    b.append(v)
    return bytes(b)
out, pieces, i = bytearray(), 0, 0
while i < len(raw):
    start = i
    tag, i = varint(raw, i)
    wt = tag & 7
    if wt == 0:
        _, i = varint(raw, i)
    elif wt == 1:
        i += 8
    elif wt == 5:
        i += 4
    elif wt == 2:
        n, i = varint(raw, i)
        i += n
    else:
        raise SystemExit('unexpected wire type %d' % wt)
    if tag >> 3 == 1:
        pieces += 1
        if pieces > 300:
            continue
    if tag >> 3 == 3 and wt == 2:  # normalizer_spec without its precompiled_charsmap (field 2, ~240 KB)
        body, j, keep = raw[i - n:i], 0, bytearray()
        while j < len(body):
            s0 = j
            t, j = varint(body, j)
            if t & 7 == 0:
                _, j = varint(body, j)
            elif t & 7 == 2:
                m, j = varint(body, j)
                j += m
            elif t & 7 == 1:
                j += 8
            else:
                j += 4
            if t >> 3 != 2:
                keep += body[s0:j]
        out += bytes([tag]) + enc(len(keep)) + keep
        continue
    out += raw[start:i]
open(sys.argv[2], 'wb').write(bytes(out))
PY
}

# ---- safetensors ---------------------------------------------------------------------------------
S=$DATA/stories260K G=$DATA/gutenberg28M
if [ $have_py -eq 1 ]; then
  shrink_st "$S/model.safetensors" "$WORK/stories.safetensors"
  seed safetensors stories '000' "$WORK/stories.safetensors"
  shards=()
  for i in 1 2 3 4; do
    shrink_st "$G/model-0000$i-of-00004.safetensors" "$WORK/gutenberg-$i.safetensors"
    shards+=("$WORK/gutenberg-$i.safetensors")
  done
  seed safetensors gutenberg-shard1 '000' "$WORK/gutenberg-1.safetensors"
  seed safetensors gutenberg-index '001' "$G/model.safetensors.index.json" "${shards[@]}"
else
  echo "seed.sh: no python3: safetensors seeds are header-only cuts" >&2
  n=$(od -An -tu8 -N8 "$S/model.safetensors" | tr -d ' ')
  head -c $((8 + n)) "$S/model.safetensors" > "$WORK/stories-header.safetensors"
  seed safetensors stories-header '000' "$WORK/stories-header.safetensors"
fi

# ---- config.json ---------------------------------------------------------------------------------
seed config stories "" "$S/config.json"
seed config gutenberg "" "$G/config.json"
cat > "$WORK/llama31.json" << 'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
 "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
 "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "hidden_act": "silu",
 "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192, "rope_type": "llama3"},
 "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "tie_word_embeddings": false,
 "torch_dtype": "bfloat16", "attention_bias": false, "mlp_bias": false, "head_dim": 128}
EOF
cat > "$WORK/qwen2.json" << 'EOF'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
 "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
 "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "use_sliding_window": true,
 "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "bos_token_id": null,
 "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "linear", "factor": 2.0},
 "quantization_config": {"quant_method": "gptq", "bits": 4, "checkpoint_format": "gptq_v2"}}
EOF
cat > "$WORK/mistral.json" << 'EOF'
{"architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336,
 "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000,
 "sliding_window": 4096, "dtype": "float16", "rope_scaling": {"type": "default"}}
EOF
seed config llama31 "" "$WORK/llama31.json"
seed config qwen2 "" "$WORK/qwen2.json"
seed config mistral "" "$WORK/mistral.json"

# ---- files qshard writes -------------------------------------------------------------------------
gen=""
if [ -n "$BUILD" ] && [ -x "$BUILD/fuzz/fuzz_seedgen" ]; then
  gen=$WORK/gen
  ASAN_OPTIONS=detect_leaks=0 "$BUILD/fuzz/fuzz_seedgen" "$gen"
  # For QS_FUZZ_H5_RAW=1 runs only (fuzz_h5.h): the files themselves.
  mkdir -p "$OUT/hdf5-raw" "$OUT/state-raw"
  seed state-raw state '000' "$gen/state.h5"
  seed state-raw x '001' "$gen/x.h5"
  seed hdf5-raw tokens-1d '044' "$gen/tokens-1d.h5"
  seed hdf5-raw tokens-2d '042' "$gen/tokens-2d.h5"
  seed gguf imatrix-open '000' "$gen/imatrix.gguf"
  seed gguf imatrix '001' "$gen/imatrix.gguf"
  seed gguf model-open '000' "$gen/model.gguf"
  seed gguf model '002' "$gen/model.gguf"
  # the manifest of the directory fuzz_manifest checks against (fuzz_out.h): every file matches
  [ -f "$gen/manifest-out/qshard_manifest.json" ] && seed manifest out "" "$gen/manifest-out/qshard_manifest.json"
fi
if [ -n "$BUILD" ] && [ -x "$BUILD/qshard" ]; then
  rm -rf "$WORK/q"
  ASAN_OPTIONS=detect_leaks=0 OPENBLAS_NUM_THREADS=1 "$BUILD/qshard" quantize --model "$S" --method rtn \
    --format gptq --out "$WORK/q/gptq" > "$WORK/q-gptq.log" 2>&1 || { cat "$WORK/q-gptq.log" >&2; exit 1; }
  seed config gptq "" "$WORK/q/gptq/config.json"
  # a real manifest (none in a build without OpenSSL): against fuzz_manifest's directory (fuzz_out.h)
  # its files have other sizes
  [ -f "$WORK/q/gptq/qshard_manifest.json" ] && seed manifest stories-gptq "" "$WORK/q/gptq/qshard_manifest.json"
  if [ $have_py -eq 1 ]; then
    shrink_st "$WORK/q/gptq/model.safetensors" "$WORK/gptq.safetensors"
    seed safetensors gptq '000' "$WORK/gptq.safetensors"
  fi
fi

# ---- HDF5: descriptions of files (fuzz_h5.h; byte value 0 = the expected choice) ---------------------
# hdf5: byte 0 the calibration request, 1 where /input_ids is, 2 its shape (0: 1-D [100], 1: 2-D [4, 16]).
printf '\044' > "$OUT/hdf5/1d"                  # samples 4, seqlen 16
printf '\042\000\001' > "$OUT/hdf5/2d"          # samples 2, seqlen 16 = the row length
printf '\000\000\001' > "$OUT/hdf5/2d-all-rows"
printf '\044\014' > "$OUT/hdf5/soft-link"        # /input_ids -> /data
printf '\044\013' > "$OUT/hdf5/group"            # /input_ids is a group
printf '\044\000\000\014\003' > "$OUT/hdf5/string-1d"
printf '\044\000\001\000\007\001\002\001' > "$OUT/hdf5/2d-off-by-one"
printf '\000' > "$OUT/state/state"
printf '\001' > "$OUT/state/x"
printf '\000\000\001\001' > "$OUT/state/format-scalar-2"   # format: a string of another padding
printf '\001\000\000\000\000\006' > "$OUT/state/x-dims"
mkdir -p "$OUT/hdf5-raw"
seed hdf5-raw tinystories '044' "$S/tinystories_sample.tok512.h5"

# ---- manifests (fuzz_manifest: the input is OUT/qshard_manifest.json of fuzz_out.h's directory) -------
# small ones: no files (every file of the directory unlisted); one file that matches (the empty file's
# SHA-256) beside a hidden one; one problem of each kind (missing, size, changed) and a "./" path
cat > "$OUT/manifest/no-files" << 'EOF'
{"format": "qshard-manifest-1", "algorithm": "sha256", "files": []}
EOF
cat > "$OUT/manifest/empty-and-hidden" << 'EOF'
{"format": "qshard-manifest-1", "algorithm": "sha256", "files": [
 {"path": "empty.bin", "bytes": 0, "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
 {"path": ".state/layer-00000/model.safetensors", "bytes": 14, "sha256": "0000000000000000000000000000000000000000000000000000000000000000"}]}
EOF
cat > "$OUT/manifest/problems" << 'EOF'
{"format": "qshard-manifest-1", "algorithm": "sha256", "files": [
 {"path": "gone.bin", "bytes": 1, "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
 {"path": "compressed-tensors/config.json", "bytes": 7, "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
 {"path": "./empty.bin", "bytes": 0, "sha256": "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"}]}
EOF

# ---- tokenizers ----------------------------------------------------------------------------------
seed vocab tok512 '000' "$S/tok512.bin"
seed vocab tok512-dir '003' "$S/tok512.bin" /dev/null "$S/config.json"
if [ $have_py -eq 1 ]; then
  shrink_spm "$G/tokenizer.model" "$WORK/gutenberg.model"
  shrink_spm "$DATA/tokenizers/llama2-tokenizer.model" "$WORK/llama2.model"
else
  head -c 20000 "$G/tokenizer.model" > "$WORK/gutenberg.model" # a cut: most of it fails to parse
  cp "$WORK/gutenberg.model" "$WORK/llama2.model"
fi
seed vocab gutenberg-spm '001' "$WORK/gutenberg.model"
seed vocab llama2-spm '001' "$WORK/llama2.model"
cat > "$WORK/tokenizer_config.json" << 'EOF'
{"add_bos_token": true, "add_eos_token": false, "bos_token": "<s>", "eos_token": {"content": "</s>", "special": true},
 "unk_token": "<unk>", "pad_token": null, "add_prefix_space": false,
 "added_tokens_decoder": {"0": {"content": "<unk>", "special": true}, "1": {"content": "<s>", "special": true},
                          "2": {"content": "</s>", "special": true}, "5": {"content": "<|im_start|>", "special": false}},
 "chat_template": [{"name": "default", "template": "{{ messages }}"}, {"name": "tool use", "template": "{{ tools }}"}]}
EOF
cat > "$WORK/added_tokens.json" << 'EOF'
{"<extra_0>": 7, "<extra_1>": 8}
EOF
seed vocab gutenberg-dir '004' "$WORK/gutenberg.model" "$WORK/tokenizer_config.json" "$G/config.json" \
  "$WORK/added_tokens.json"
# A byte-level BPE tokenizer.json in Llama-3's layout (a few tokens; the real ones are MBs).
cat > "$WORK/tokenizer.json" << 'EOF'
{"version": "1.0",
 "added_tokens": [{"id": 8, "content": "<|begin_of_text|>", "special": true},
                  {"id": 9, "content": "<|end_of_text|>", "special": true},
                  {"id": 10, "content": "<|eot_id|>", "special": true}],
 "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
   {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    "behavior": "Isolated", "invert": false},
   {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
 "post_processor": {"type": "Sequence", "processors": [
   {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
   {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
             {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [8], "tokens": ["<|begin_of_text|>"]}}}]},
 "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
 "model": {"type": "BPE", "dropout": null, "unk_token": null, "byte_fallback": false,
           "vocab": {"a": 0, "b": 1, "c": 2, "Ġ": 3, "ab": 4, "abc": 5, "Ġa": 6, "ĠĠ": 7},
           "merges": ["a b", ["ab", "c"], "Ġ a", ["Ġ", "Ġ"]]}}
EOF
cat > "$WORK/bpe_config.json" << 'EOF'
{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "add_bos_token": true,
 "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}
EOF
cat > "$WORK/bpe_model_config.json" << 'EOF'
{"model_type": "llama", "vocab_size": 12, "bos_token_id": 8, "eos_token_id": [9, 10], "pad_token_id": 11}
EOF
seed vocab bpe '002' "$WORK/tokenizer.json"
seed vocab bpe-dir '005' "$WORK/tokenizer.json" "$WORK/bpe_config.json" "$WORK/bpe_model_config.json"

# fuzz_tokenizer reads the same layout as fuzz_vocab (its encoders parse what vocab.c skips: the
# normalizer and charsmap, the regex, the merges) from the same files
cp "$OUT"/vocab/* "$OUT/tokenizer/"

rm -rf "$WORK"
for t in safetensors config hdf5 gguf vocab state tokenizer manifest; do
  echo "seed.sh: $t: $(ls "$OUT/$t" | wc -l) seeds, $(du -sk "$OUT/$t" | cut -f1) KiB"
done
