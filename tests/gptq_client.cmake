# A real client (PyPI safetensors + numpy) loads the GPTQ v1 checkpoints of `qshard quantize` and checks
# them against FORMATS.md §2 and the input model (tests/py/gptq_client.{sh,py}).
qs_add_sh_test(test_gptq_client py/gptq_client.sh LABELS python data)
# The engines' own packages (transformers + compressed-tensors; transformers + optimum + gptqmodel)
# load the compressed-tensors and GPTQ v1 outputs, with the perplexity of `qshard eval`
# (tests/py/hf_client.{sh,py}; the pinned packages: tests/py/requirements-*.txt, installed by .ci/run).
qs_add_sh_test(test_hf_client py/hf_client.sh LABELS python data)
