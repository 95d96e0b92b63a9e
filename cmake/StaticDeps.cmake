# NODEPORT_STATIC: the libraries nodeport links, from their static archives
# (Debian ships them in the -dev packages), as INTERFACE targets that the
# loader uses in place of the pkg-config ones: NODEPORT_LIBBPF, NODEPORT_LIBNL
# and NODEPORT_FMT. Debian's libfmt-dev has no libfmt.a, so fmt is compiled
# in from its headers (fmt::fmt-header-only). Boost comes static through
# Boost_USE_STATIC_LIBS, set before find_package(Boost).

# np_static_archive(VAR NAME...): the full path of libNAME.a, or a configure
# error naming the package to install.
function(np_static_archive VAR LIB PACKAGE)
  find_library(${VAR} NAMES lib${LIB}.a)
  if(NOT ${VAR})
    message(FATAL_ERROR "NODEPORT_STATIC needs lib${LIB}.a: apt install ${PACKAGE}")
  endif()
endfunction()

np_static_archive(NP_LIBBPF_A bpf libbpf-dev)
np_static_archive(NP_LIBELF_A elf libelf-dev)
np_static_archive(NP_LIBZ_A z zlib1g-dev)
np_static_archive(NP_LIBZSTD_A zstd libzstd-dev)
np_static_archive(NP_LIBNL_A nl-3 libnl-3-dev)
np_static_archive(NP_LIBNL_ROUTE_A nl-route-3 libnl-route-3-dev)
find_package(Threads REQUIRED)

# Debian's libelf.a from elfutils 0.192 calls elfutils' internal search-tree
# helpers without containing them (libelf.so has them): supply them then.
set(_elf_extra "")
execute_process(COMMAND ${CMAKE_NM} ${NP_LIBELF_A} OUTPUT_VARIABLE _elf_syms ERROR_QUIET)
if(_elf_syms MATCHES " U eu_search_tree_init" AND NOT _elf_syms MATCHES " T eu_search_tree_init")
  message(STATUS "libelf.a lacks elfutils' eu_search_tree_*: linking loader/static/elfutils_search.c")
  add_library(nodeport_elfutils_search STATIC ${CMAKE_SOURCE_DIR}/loader/static/elfutils_search.c)
  set(_elf_extra nodeport_elfutils_search)
endif()

# Order matters for static archives: each before the ones it uses.
add_library(nodeport_static_libbpf INTERFACE)
target_include_directories(nodeport_static_libbpf INTERFACE ${LIBBPF_INCLUDE_DIRS})
target_link_libraries(nodeport_static_libbpf INTERFACE ${NP_LIBBPF_A} ${NP_LIBELF_A} ${_elf_extra} ${NP_LIBZSTD_A}
                                                       ${NP_LIBZ_A} Threads::Threads)
add_library(nodeport_static_libnl INTERFACE)
target_include_directories(nodeport_static_libnl INTERFACE ${LIBNL_INCLUDE_DIRS})
target_link_libraries(nodeport_static_libnl INTERFACE ${NP_LIBNL_ROUTE_A} ${NP_LIBNL_A} Threads::Threads)

set(NODEPORT_LIBBPF nodeport_static_libbpf)
set(NODEPORT_LIBNL nodeport_static_libnl)
set(NODEPORT_FMT fmt::fmt-header-only)
