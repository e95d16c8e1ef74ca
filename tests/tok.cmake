# tok.cmake — text to token ids (io/tokenizer.h) and calibration from text (io/calib_text.h):
#   test_tokenizer_ids (python data): ids identical to the sentencepiece and tokenizers packages for the
#     shared and test-trained SentencePiece BPE / unigram models, test-trained byte-level BPE tokenizer.json
#     files and llama2.c's tok512.bin (tests/py/tok_compare.py, through the test_tokenizer tool);
#   test_calib (mpi data): qshard calib rebuilds the shared token streams, its windows, errors and atomic
#     writes, and quantize --calib-text against --calib (tests/test_calib.sh).
add_executable(test_tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/test_tokenizer.c)
target_link_libraries(test_tokenizer PRIVATE qs_core)
if(QS_PYTHON)
  add_test(NAME test_tokenizer_ids COMMAND ${QS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/py/tok_compare.py
           $<TARGET_FILE:test_tokenizer> ${QS_DATA_DIR} ${CMAKE_CURRENT_BINARY_DIR}/tok_compare)
  set_tests_properties(test_tokenizer_ids PROPERTIES LABELS "python;data" ENVIRONMENT "${QS_TEST_ENV}"
                       SKIP_RETURN_CODE 77)
endif()
qs_add_sh_test(test_calib test_calib.sh LABELS mpi data ARGS $<TARGET_FILE:test_tokenizer>)
