# nodeport's errors are std::expected (C++23). GCC 12's libstdc++ has it, but
# its <expected> is hidden unless __cpp_concepts >= 202002L, which clang only
# reports from version 19, although clang 16 already implements what the
# header needs (P0848, conditionally trivial special members). Debian 12 ships
# clang 14 and 16: with clang 16-18 we state the feature level clang has;
# older clang gets a message naming the compiler to install.
include(CheckCXXSourceCompiles)

set(_expected_probe "#include <expected>
int main() { std::expected<int, int> e = 1; return *e - 1; }")

set(CMAKE_REQUIRED_FLAGS "-std=c++2b")
check_cxx_source_compiles("${_expected_probe}" NODEPORT_HAS_STD_EXPECTED)
if(NOT NODEPORT_HAS_STD_EXPECTED)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 16)
    set(_concepts_flags -Wno-macro-redefined -D__cpp_concepts=202002L)
    list(JOIN _concepts_flags " " CMAKE_REQUIRED_FLAGS)
    string(PREPEND CMAKE_REQUIRED_FLAGS "-std=c++2b ")
    check_cxx_source_compiles("${_expected_probe}" NODEPORT_HAS_STD_EXPECTED_WITH_CONCEPTS)
    if(NODEPORT_HAS_STD_EXPECTED_WITH_CONCEPTS)
      add_compile_options("$<$<COMPILE_LANGUAGE:CXX>:${_concepts_flags}>")
    endif()
  endif()
  if(NOT NODEPORT_HAS_STD_EXPECTED_WITH_CONCEPTS)
    message(FATAL_ERROR "${CMAKE_CXX_COMPILER} ${CMAKE_CXX_COMPILER_VERSION} has no usable std::expected "
                        "(C++23). Use g++ >= 12 or clang++ >= 16 (apt install clang-16, then "
                        "CXX=clang++-16 cmake ...).")
  endif()
endif()
unset(CMAKE_REQUIRED_FLAGS)
