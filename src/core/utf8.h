/* File names and text files are bytes, JSON text is UTF-8: a name with bytes that are not
 * UTF-8 (a 0xff from an old Latin-1 file system) would make JSON that no reader accepts. */
#ifndef SHOAL_CORE_UTF8_H
#define SHOAL_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Whether s is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
bool sh_utf8_valid(const char *s);

/* s itself when it is valid UTF-8; otherwise a copy in buf[cap] with each byte that does not
 * start a well-formed sequence replaced by U+FFFD, cut at a whole character when buf is full.
 * The result is what a JSON writer (cJSON, which escapes quotes and control characters) may
 * take as a string. cap must be at least 1. */
const char *sh_utf8_clean(const char *s, char *buf, size_t cap);

#endif
