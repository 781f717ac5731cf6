# `cmake --install`: libshoal.so (versioned), libshoal.a, shoal.h, the `shoal` command, a
# pkg-config file and a CMake package (find_package(shoal): shoal::shoal, shoal::shoal_static).
include(CMakePackageConfigHelpers)

install(TARGETS shoal_shared shoal_static EXPORT shoalTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS shoal RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_SOURCE_DIR}/include/shoal.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# What a static link needs besides libshoal.a: the dependencies' own link flags (their
# shared libraries; pkg-config's --libs of each, not their static closures), oneDNN, OpenMP.
set(_flags "")
foreach(dep PROTOBUFC YAML CJSON MHD NETTLE OPENBLAS XXHASH LIBZIP TURBOJPEG)
  list(APPEND _flags ${${dep}_LDFLAGS})
endforeach()
list(APPEND _flags -ldnnl ${OpenMP_C_FLAGS} -lpthread -lm -ldl)
list(REMOVE_DUPLICATES _flags)
string(REPLACE ";" " " SHOAL_PC_LIBS_PRIVATE "${_flags}")
if(SHOAL_HAVE_CUDA)
  foreach(l ${SHOAL_CUDA_LIBS})
    if(IS_ABSOLUTE ${l})
      string(APPEND SHOAL_PC_LIBS_PRIVATE " ${l}")
    else()
      string(APPEND SHOAL_PC_LIBS_PRIVATE " -l${l}")
    endif()
  endforeach()
  # the kernels' host code is C++ (nvcc)
  string(APPEND SHOAL_PC_LIBS_PRIVATE " -lstdc++")
endif()
configure_file(${CMAKE_SOURCE_DIR}/cmake/shoal.pc.in ${CMAKE_BINARY_DIR}/shoal.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/shoal.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

set(SHOAL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/shoal)
install(EXPORT shoalTargets NAMESPACE shoal:: DESTINATION ${SHOAL_CMAKE_DIR})
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/shoalConfig.cmake.in
  ${CMAKE_BINARY_DIR}/shoalConfig.cmake INSTALL_DESTINATION ${SHOAL_CMAKE_DIR})
# 0.x: only the same minor version is compatible (the SONAME carries it too)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/shoalConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/shoalConfig.cmake ${CMAKE_BINARY_DIR}/shoalConfigVersion.cmake
  DESTINATION ${SHOAL_CMAKE_DIR})
