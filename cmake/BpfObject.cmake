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

set(VMLINUX_BTF /sys/kernel/btf/vmlinux CACHE FILEPATH "kernel BTF that vmlinux.h is generated from")
set(BPF_GEN_DIR ${CMAKE_BINARY_DIR}/bpf)
file(MAKE_DIRECTORY ${BPF_GEN_DIR})

add_custom_command(
  OUTPUT ${BPF_GEN_DIR}/vmlinux.h
  COMMAND ${BPFTOOL} btf dump file ${VMLINUX_BTF} format c > ${BPF_GEN_DIR}/vmlinux.h.tmp
  COMMAND ${CMAKE_COMMAND} -E rename ${BPF_GEN_DIR}/vmlinux.h.tmp ${BPF_GEN_DIR}/vmlinux.h
  COMMENT "Generating vmlinux.h from ${VMLINUX_BTF}")
# One target owns vmlinux.h: were it only a DEPENDS of every BPF object,
# a parallel build would run its command once per object, racing on the rename.
add_custom_target(vmlinux_h DEPENDS ${BPF_GEN_DIR}/vmlinux.h)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(BPF_TARGET_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(BPF_TARGET_ARCH arm64)
else()
  set(BPF_TARGET_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()

set(BPF_VARIANT_FLAGS "")
if(NODEPORT_BPF_TEST_VARIANT)
  set(BPF_VARIANT_FLAGS -DNP_TEST_VARIANT)
endif()

function(bpf_object NAME)
  set(src ${CMAKE_SOURCE_DIR}/bpf/${NAME}.bpf.c)
  set(obj ${BPF_GEN_DIR}/${NAME}.bpf.o)
  set(skel ${BPF_GEN_DIR}/${NAME}.skel.h)
  file(GLOB bpf_headers ${CMAKE_SOURCE_DIR}/bpf/*.bpf.h ${CMAKE_SOURCE_DIR}/include/nodeport/abi.h)
  add_custom_command(
    OUTPUT ${obj}
    # -mcpu=v3: atomic fetch-and-or (Linux >= 5.12) for the flow table's FIN bits.
    COMMAND ${CLANG} -g -O2 -Wall -Werror -target bpf -mcpu=v3 -D__TARGET_ARCH_${BPF_TARGET_ARCH} ${BPF_VARIANT_FLAGS}
            -I${BPF_GEN_DIR} -I${CMAKE_SOURCE_DIR}/bpf -I${CMAKE_SOURCE_DIR}/include
            -c ${src} -o ${obj}
    DEPENDS ${src} ${bpf_headers} ${BPF_GEN_DIR}/vmlinux.h
    COMMENT "Compiling BPF ${NAME}.bpf.c")
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${NAME}_bpf > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "Generating ${NAME}.skel.h")
  add_custom_target(${NAME}_skel_gen DEPENDS ${skel})
  add_dependencies(${NAME}_skel_gen vmlinux_h)
  add_library(${NAME}_skel INTERFACE)
  add_dependencies(${NAME}_skel ${NAME}_skel_gen)
  target_include_directories(${NAME}_skel INTERFACE ${BPF_GEN_DIR})
endfunction()
