# GGUF container (src/io/gguf.c), GGUF vocabularies (src/io/vocab.c) and `qshard inspect` of GGUF
# (tests/test_inspect.sh, registered in safetensors.cmake).
qs_add_c_test(test_gguf_io SOURCES test_gguf_io.c LABELS unit)
target_link_libraries(test_gguf_io PRIVATE Threads::Threads)
# Same program on the shared data: llama.cpp's ggml-vocab-llama-spm.gguf against llama2-tokenizer.model,
# stories260K's tok512.bin, gutenberg28M's tokenizer.model (skips without QS_DATA_DIR).
add_test(NAME test_gguf_io_data COMMAND test_gguf_io --data)
set_tests_properties(test_gguf_io_data PROPERTIES LABELS "unit;data" SKIP_RETURN_CODE 77 ENVIRONMENT "${QS_TEST_ENV}")
# gguf-py's GGUFReader reads a file qshard's writer made (every KV with its type, every tensor);
# skips without QS_PYTHON.
qs_add_sh_test(test_gguf_python py/gguf_reader.sh LABELS python)
