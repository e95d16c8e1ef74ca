# libFuzzer harnesses of the parsers of outside input (tests/fuzz/), built when QS_FUZZ=ON (clang;
# see the QS_FUZZ block of the top-level CMakeLists.txt). Not ctest tests: tests/fuzz/run.sh BUILD_DIR
# DATA_DIR SECONDS seeds and runs each one and replays tests/fuzz/regress/<target>/.
if(QS_FUZZ)
  set(QS_FUZZ_TARGETS safetensors config hdf5 gguf vocab state tokenizer manifest)
  foreach(t ${QS_FUZZ_TARGETS})
    add_executable(fuzz_${t} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_${t}.c)
    target_link_libraries(fuzz_${t} PRIVATE qs_core)
    target_include_directories(fuzz_${t} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
    target_compile_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
    set_target_properties(fuzz_${t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  endforeach()
  # Writes the seeds no shared file provides (resume state, x file, imatrix GGUF, small token files,
  # the manifest of fuzz_manifest's output directory).
  add_executable(fuzz_seedgen ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_seedgen.c)
  target_link_libraries(fuzz_seedgen PRIVATE qs_core)
  target_include_directories(fuzz_seedgen PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
  set_target_properties(fuzz_seedgen PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
endif()
