# A real client (PyPI safetensors + numpy) loads the GPTQ v1 checkpoints of `qshard quantize` and checks
# them against FORMATS.md §2 and the input model (tests/py/gptq_client.{sh,py}).
qs_add_sh_test(test_gptq_client py/gptq_client.sh LABELS python data)
