/* The public functions as include/shoal.h declares them: the names after `SHOAL_API <type>`
 * on each declaration, read from the header itself so the tests follow it. */
#ifndef SHOAL_TESTS_LIB_API_NAMES_H
#define SHOAL_TESTS_LIB_API_NAMES_H

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define API_MAX_NAMES 128
#define API_NAME_LEN 64

/* Returns how many names were read into names[], or -1 when the header cannot be read. */
static inline int api_names(const char *header, char names[][API_NAME_LEN], int cap)
{
    FILE *f = fopen(header, "r");
    if (!f)
        return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < cap) {
        if (strncmp(line, "SHOAL_API ", 10) != 0)
            continue;
        char *paren = strchr(line, '(');
        if (!paren)
            continue;
        char *end = paren, *start = paren;
        while (start > line && (isalnum((unsigned char)start[-1]) || start[-1] == '_'))
            start--;
        size_t len = (size_t)(end - start);
        if (len == 0 || len >= API_NAME_LEN)
            continue;
        memcpy(names[n], start, len);
        names[n][len] = '\0';
        n++;
    }
    fclose(f);
    return n;
}

static inline int api_name_index(char names[][API_NAME_LEN], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name))
            return i;
    return -1;
}

#endif
