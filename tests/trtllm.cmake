# `qshard quantize --tp T`: the TensorRT-LLM per-rank checkpoint (src/formats/trtllm.c, FORMATS.md §6.1),
# re-assembled by a PyPI safetensors + numpy client and compared with the GPTQ checkpoint.
qs_add_sh_test(test_trtllm test_trtllm.sh LABELS mpi data python)
