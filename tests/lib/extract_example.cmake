# cmake -DHEADER=include/shoal.h -DOUT=header_example.c -P extract_example.cmake
# The example program of shoal.h's top comment (between EXAMPLE-BEGIN and EXAMPLE-END) as a
# C file, so the header's example is compiled and run and cannot drift from the API.
file(READ ${HEADER} text)
string(FIND "${text}" "EXAMPLE-BEGIN\n" begin)
string(FIND "${text}" " * EXAMPLE-END" end)
if(begin LESS 0 OR end LESS begin)
  message(FATAL_ERROR "${HEADER}: no EXAMPLE-BEGIN ... EXAMPLE-END block")
endif()
math(EXPR begin "${begin} + 14")
math(EXPR len "${end} - ${begin}")
string(SUBSTRING "${text}" ${begin} ${len} example)
file(WRITE ${OUT}.tmp "/* Generated from ${HEADER} by tests/lib/extract_example.cmake. */\n${example}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
