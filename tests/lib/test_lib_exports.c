/* libshoal.so exports the public API and nothing else: `nm -D --defined-only` on the built
 * library lists exactly the functions shoal.h declares with SHOAL_API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_names.h"

static const char *lib_path;

static void exports_are_the_header_api(void **state)
{
    (void)state;
    static char api[API_MAX_NAMES][API_NAME_LEN], exported[1024][API_NAME_LEN];
    int n_api = api_names(SHOAL_SOURCE_DIR "/include/shoal.h", api, API_MAX_NAMES);
    assert_true(n_api > 30);

    char cmd[1200];
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s'", lib_path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[512];
    int n_exp = 0;
    while (fgets(line, sizeof line, p) && n_exp < 1024) {
        char addr[64], type[8], name[256];
        if (sscanf(line, "%63s %7s %255s", addr, type, name) != 3)
            continue;
        name[strcspn(name, "@")] = '\0';   /* symbol versions, if any */
        if (strlen(name) >= API_NAME_LEN)
            fail_msg("exported symbol %s is not the public API", name);
        snprintf(exported[n_exp++], API_NAME_LEN, "%s", name);
    }
    int status = pclose(p);
    assert_int_equal(status, 0);
    assert_true(n_exp > 0);   /* nm ran and read the library */

    for (int i = 0; i < n_exp; i++)
        if (strncmp(exported[i], "shoal_", 6) != 0 || api_name_index(api, n_api, exported[i]) < 0)
            fail_msg("libshoal.so exports %s, which shoal.h does not declare", exported[i]);
    for (int i = 0; i < n_api; i++)
        if (api_name_index(exported, n_exp, api[i]) < 0)
            fail_msg("shoal.h declares %s but libshoal.so does not export it", api[i]);
    assert_int_equal(n_exp, n_api);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s libshoal.so\n", argv[0]);
        return 2;
    }
    lib_path = argv[1];
    const struct CMUnitTest tests[] = {cmocka_unit_test(exports_are_the_header_api)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
