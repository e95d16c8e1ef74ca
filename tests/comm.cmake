# comm/: ordered collectives.
qs_add_c_test(test_treesum SOURCES test_treesum.c LABELS unit)
qs_add_sh_test(test_treesum_mpi test_treesum.sh LABELS mpi)
