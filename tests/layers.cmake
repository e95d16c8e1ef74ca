# The layers of src/ and the absence of include circles (tests/check_layers.py).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_FOUND)
  add_test(NAME test_layers COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/check_layers.py ${CMAKE_SOURCE_DIR})
  set_tests_properties(test_layers PROPERTIES LABELS unit)
endif()
