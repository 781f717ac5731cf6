/* Byte sizes: units, fractions, shares and every overflow edge. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/config.h"

static void ok(const char *s, uint64_t want)
{
    sh_config_size z;
    char why[128] = "";
    if (sh_config_parse_size(s, true, &z, why, sizeof why) != 0)
        fail_msg("'%s' rejected: %s", s, why);
    assert_int_equal(z.kind, SH_SIZE_BYTES);
    if (z.bytes != want)
        fail_msg("'%s' = %llu, want %llu", s, (unsigned long long)z.bytes, (unsigned long long)want);
}

static void bad(const char *s, bool allow_percent, const char *why_part)
{
    sh_config_size z;
    char why[128] = "";
    if (sh_config_parse_size(s, allow_percent, &z, why, sizeof why) == 0)
        fail_msg("'%s' accepted", s);
    if (!strstr(why, why_part))
        fail_msg("'%s': reason '%s' lacks '%s'", s, why, why_part);
}

static void test_units(void **state)
{
    ok("0", 0);
    ok("4096", 4096);
    ok("512B", 512);
    ok("1K", 1024);
    ok("1kb", 1024);
    ok("1KiB", 1024);
    ok("512MB", 512ull << 20);
    ok("512 MiB", 512ull << 20);
    ok(" 6GB ", 6ull << 30);
    ok("1.5GiB", 3ull << 29);
    ok("1.5G", 3ull << 29);
    ok("0.5k", 512);
    ok("0.1KB", 102);                 /* whole bytes, rounded down */
    ok("2TB", 2ull << 40);
    ok("1.000001TiB", (1ull << 40) + 1099511ull);
    ok("18446744073709551615", UINT64_MAX);
    ok("16777215TiB", 16777215ull << 40);
}

static void test_rejects(void **state)
{
    bad("", true, "expected a number");
    bad("MB", true, "expected a number");
    bad("-1GB", true, "expected a number");
    bad("1.GB", true, "digits after '.'");
    bad("1.5", true, "whole");
    bad("1.1234567GB", true, "more than 6 decimals");
    bad("18446744073709551616", true, "too large");
    bad("16777216TiB", true, "too large");
    bad("99999999999999999999999", true, "too large");
    bad("1 parsec", true, "unknown unit");
    bad("1GBB", true, "unknown unit");
    bad("1Gi", true, "unknown unit");
    bad("1 E", true, "unknown unit");
    bad("50%", false, "not allowed");
    bad("0%", true, "(0%, 100%]");
    bad("100.5%", true, "(0%, 100%]");
    bad("50% extra", true, "after '%'");
}

static void test_percent(void **state)
{
    sh_config_size z;
    assert_int_equal(sh_config_parse_size("60%", true, &z, NULL, 0), 0);
    assert_int_equal(z.kind, SH_SIZE_PERCENT);
    assert_float_equal(z.percent, 60.0, 0);
    assert_int_equal(sh_config_size_bytes(&z, 1000, 7), 600);
    assert_int_equal(sh_config_parse_size("12.5 %", true, &z, NULL, 0), 0);
    assert_float_equal(z.percent, 12.5, 0);
    assert_int_equal(sh_config_parse_size("100%", true, &z, NULL, 0), 0);
    sh_config_size unset = {0};
    assert_int_equal(sh_config_size_bytes(&unset, 1000, 7), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_percent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
