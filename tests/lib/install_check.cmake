# The installed package works for a program outside the tree: `cmake --install` into a fresh
# prefix, then examples/detect.c built three ways and run on the tiny models:
#   - pkg-config --cflags --libs shoal (libshoal.so),
#   - pkg-config --static --cflags --libs shoal with libshoal.a (nothing else on the line),
#   - find_package(shoal) (shoal::shoal and shoal::shoal_static).
# -D: BUILD_DIR, SOURCE_DIR, WORK, LIBDIR (CMAKE_INSTALL_LIBDIR), CC, CONFIG (tiny.yaml), and
# SAN_FLAGS: the sanitizer flags the library was built with, which its users must link with too.
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${ARGN}\n${out}\n${err}")
  endif()
  set(OUT "${out}" PARENT_SCOPE)
endfunction()

# A detect binary runs the tiny config's shopping mode and prints both models' lines.
function(check_detect exe)
  run("${exe}" ${exe} ${CONFIG} shopping)
  if(NOT OUT MATCHES "shopping \\(detect\\): [0-9]+ detections" OR NOT OUT MATCHES "hand \\(landmarks\\): 0 detections"
     OR NOT OUT MATCHES "json: ok")
    message(FATAL_ERROR "${exe}: unexpected output:\n${OUT}")
  endif()
endfunction()

# A binary linked statically against shoal needs no libshoal.so at run time.
function(check_no_libshoal exe)
  run("readelf" readelf -d ${exe})
  if(OUT MATCHES "libshoal")
    message(FATAL_ERROR "${exe} needs libshoal.so:\n${OUT}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK})
set(prefix ${WORK}/prefix)
run("cmake --install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
foreach(f include/shoal.h ${LIBDIR}/libshoal.a ${LIBDIR}/pkgconfig/shoal.pc ${LIBDIR}/cmake/shoal/shoalConfig.cmake bin/shoal)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
file(GLOB sonames ${prefix}/${LIBDIR}/libshoal.so.*)
if(NOT sonames)
  message(FATAL_ERROR "no versioned libshoal.so.* installed")
endif()
run("readelf" readelf -d ${prefix}/${LIBDIR}/libshoal.so)
if(NOT OUT MATCHES "SONAME\\) +Library soname: \\[libshoal\\.so\\.[0-9]+\\.[0-9]+\\]")
  message(FATAL_ERROR "libshoal.so has no versioned SONAME:\n${OUT}")
endif()

set(ENV{PKG_CONFIG_PATH} ${prefix}/${LIBDIR}/pkgconfig)
set(ENV{LD_LIBRARY_PATH} ${prefix}/${LIBDIR})
set(src ${SOURCE_DIR}/examples/detect.c)
separate_arguments(san UNIX_COMMAND "${SAN_FLAGS}")

run("pkg-config" pkg-config --cflags --libs shoal)
separate_arguments(flags UNIX_COMMAND "${OUT}")
run("cc (pkg-config)" ${CC} -std=c11 -Wall -Werror ${san} ${src} -o ${WORK}/detect_pc ${flags})
check_detect(${WORK}/detect_pc)

# libshoal.a first on the search path: -lshoal then takes it, and everything else the link
# needs must come from pkg-config --static.
file(MAKE_DIRECTORY ${WORK}/static)
file(CREATE_LINK ${prefix}/${LIBDIR}/libshoal.a ${WORK}/static/libshoal.a SYMBOLIC)
run("pkg-config --static" pkg-config --static --cflags --libs shoal)
separate_arguments(flags UNIX_COMMAND "${OUT}")
run("cc (pkg-config --static)" ${CC} -std=c11 -Wall -Werror ${san} ${src} -o ${WORK}/detect_pc_static
    -L${WORK}/static ${flags})
check_no_libshoal(${WORK}/detect_pc_static)
check_detect(${WORK}/detect_pc_static)

run("cmake (find_package)" ${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples -B ${WORK}/cmake-build
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${CC} -DCMAKE_BUILD_TYPE=Release
    "-DCMAKE_C_FLAGS=${SAN_FLAGS}" "-DCMAKE_EXE_LINKER_FLAGS=${SAN_FLAGS}")
run("cmake --build (find_package)" ${CMAKE_COMMAND} --build ${WORK}/cmake-build)
check_detect(${WORK}/cmake-build/detect)
check_no_libshoal(${WORK}/cmake-build/detect_static)
check_detect(${WORK}/cmake-build/detect_static)
file(REMOVE_RECURSE ${WORK})
message(STATUS "install check passed")
