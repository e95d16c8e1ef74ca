# report.cmake — `qshard report` (src/cli/report.c, src/run/report_doc.h): report.svg and report.md
# from the quant_report.json of stories260K GPTQ and RTN runs, crafted reports (log scale, loss only,
# XML escaping) and bad inputs (tests/test_report.sh; about 3 s on 2 cores).
qs_add_sh_test(test_report test_report.sh LABELS data)
