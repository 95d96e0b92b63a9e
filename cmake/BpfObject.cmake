# Turns bpf/NAME.bpf.c into NAME.bpf.o, then NAME.skel.h, then an INTERFACE
# target NAME_skel that C++ code links to get the skeleton header.
# Generated headers are written to a temp file and renamed, so a failed step
# never leaves a truncated header behind for the next build to trust.

find_program(CLANG clang REQUIRED)
find_program(BPFTOOL bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

execute_process(COMMAND ${BPFTOOL} version OUTPUT_VARIABLE _bpftool_version_out)
string(REGEX MATCH "v([0-9]+\\.[0-9]+)" _ "${_bpftool_version_out}")
if(NOT CMAKE_MATCH_1 OR CMAKE_MATCH_1 VERSION_LESS 7.5)
  message(FATAL_ERROR "bpftool >= 7.5 is needed (found '${CMAKE_MATCH_1}'): run scripts/setup.sh, "
                      "which installs it from bookworm-backports")
endif()

# The programs build against the kernel's UAPI headers (linux-libc-dev) and,
# for the socket iterators' kernel structs, a small hand-written CO-RE header
# (bpf/sock_end_core.bpf.h): the build host's /sys/kernel/btf/vmlinux is never
# read, so a container or chroot without it builds the same objects. Clang
# targeting BPF does not search the multiarch directory where <asm/types.h>
# lives; add it (and /usr/include) after clang's own headers, as
# libbpf-bootstrap does with the host compiler's system directories.
set(BPF_GEN_DIR ${CMAKE_BINARY_DIR}/bpf)
file(MAKE_DIRECTORY ${BPF_GEN_DIR})
set(BPF_SYS_INCLUDES "")
foreach(dir /usr/include/${CMAKE_LIBRARY_ARCHITECTURE} /usr/include)
  if(IS_DIRECTORY ${dir})
    list(APPEND BPF_SYS_INCLUDES -idirafter ${dir})
  endif()
endforeach()
if(NOT EXISTS /usr/include/linux/bpf.h)
  message(FATAL_ERROR "<linux/bpf.h> is missing: install linux-libc-dev (scripts/setup.sh does)")
endif()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(BPF_TARGET_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(BPF_TARGET_ARCH arm64)
else()
  set(BPF_TARGET_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()

# bpf_object(NAME [VARIANT]). With VARIANT: the test-only variant of the
# programs (bpf/test_variant.bpf.h: another program tag, the same behaviour),
# compiled with -DNP_TEST_VARIANT into its own directory, whose NAME.skel.h
# the target NAME_variant_skel gives: the same header name and skeleton, so
# the loader's sources compile against either (loader/CMakeLists.txt).
function(bpf_object NAME)
  cmake_parse_arguments(ARG "VARIANT" "" "" ${ARGN})
  set(gen_dir ${BPF_GEN_DIR})
  set(target ${NAME})
  set(flags "")
  set(what "")
  if(ARG_VARIANT)
    set(gen_dir ${CMAKE_BINARY_DIR}/bpf-variant)
    set(target ${NAME}_variant)
    set(flags -DNP_TEST_VARIANT)
    set(what " (test variant)")
    file(MAKE_DIRECTORY ${gen_dir})
  endif()
  set(src ${CMAKE_SOURCE_DIR}/bpf/${NAME}.bpf.c)
  set(obj ${gen_dir}/${NAME}.bpf.o)
  set(skel ${gen_dir}/${NAME}.skel.h)
  file(GLOB bpf_headers ${CMAKE_SOURCE_DIR}/bpf/*.bpf.h ${CMAKE_SOURCE_DIR}/include/nodeport/*.h)
  add_custom_command(
    OUTPUT ${obj}
    # -mcpu=v3: atomic fetch-and-or (Linux >= 5.12) for the flow table's FIN bits.
    COMMAND ${CLANG} -g -O2 -Wall -Werror -target bpf -mcpu=v3 -D__TARGET_ARCH_${BPF_TARGET_ARCH} ${flags}
            -I${CMAKE_SOURCE_DIR}/bpf -I${CMAKE_SOURCE_DIR}/include ${BPF_SYS_INCLUDES}
            -c ${src} -o ${obj}
    DEPENDS ${src} ${bpf_headers}
    COMMENT "Compiling BPF ${NAME}.bpf.c${what}")
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${NAME}_bpf > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "Generating ${NAME}.skel.h${what}")
  add_custom_target(${target}_skel_gen DEPENDS ${skel})
  add_library(${target}_skel INTERFACE)
  add_dependencies(${target}_skel ${target}_skel_gen)
  target_include_directories(${target}_skel INTERFACE ${gen_dir})
endfunction()
