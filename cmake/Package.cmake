# `cpack -G DEB` in a build directory: nodeport_<version>_<arch>.deb with
# everything `cmake --install` puts in place, always under /usr whatever the
# build's own install prefix (the units are written at install time, so they
# name /usr/sbin/nodeport). The Debian packages proper (nodeport,
# libnodeport0, libnodeport-dev, with maintainer scripts, a symbols file and
# -dbgsym packages) are built from debian/ by dpkg-buildpackage.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME nodeport)
set(CPACK_PACKAGE_VENDOR "The nodeport authors")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "eBPF port forwarding from a node's ports to its sandboxes")
set(CPACK_PACKAGE_DESCRIPTION "nodeport replaces iptables DNAT for a sandbox runtime's node ports: one entry per
(protocol, node port) in a pinned BPF map, cgroup socket hooks for traffic from
the node and TC programs for traffic from outside. This package has the
nodeport command, its systemd units, the nodeport-cni plugin (in place of
portmap for CNI runtimes), and libnodeport (shared and static, with
headers, pkg-config and CMake files) for controllers.")
set(CPACK_RESOURCE_FILE_LICENSE ${CMAKE_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(NODEPORT_PACKAGE_CONTACT "nodeport maintainers <maintainers@users.noreply.r-seed-6bb3da6e.example>" CACHE STRING
    "the .deb's Maintainer field")
set(CPACK_PACKAGE_CONTACT ${NODEPORT_PACKAGE_CONTACT})

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # nodeport_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends: what dpkg-shlibdeps finds the binary and libnodeport.so link to,
# plus libbpf 1.4 stated outright: Debian 12's own libbpf1 is 1.1 (the
# dependency then comes from bookworm-backports, 1:1.4.x), and shlibdeps'
# lower bound comes from libbpf1's symbols file, which would also accept 1.1
# were the binary ever to be linked on a machine with it.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libbpf1 (>= 1:1.4)")
# Not needed to forward; `status` and `legacy-iptables` run them when present.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "iptables, nftables, bpftool")
# libnodeport.so.N: a shlibs file for packages that link it, and ldconfig
# run on install and removal: CPack writes a postinst and postrm calling it
# for a library under /lib or /usr/lib (a /usr build), and dpkg's ldconfig
# trigger covers the rest. The shlibs file is written here, in one line that
# says what it promises, rather than by CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS.
if(NOT NODEPORT_STATIC)
  file(WRITE ${CMAKE_BINARY_DIR}/debian/shlibs
       "libnodeport ${PROJECT_VERSION_MAJOR} nodeport (>= ${PROJECT_VERSION})\n")
  file(WRITE ${CMAKE_BINARY_DIR}/debian/triggers "activate-noawait ldconfig\n")
  set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_BINARY_DIR}/debian/shlibs ${CMAKE_BINARY_DIR}/debian/triggers)
  set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
endif()
if(NODEPORT_STATIC)
  # A statically linked binary: its only dependencies are libc and libstdc++,
  # which shlibdeps still finds.
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "")
endif()

include(CPack)
