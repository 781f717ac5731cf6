/* The loading progress line (src/cli/progress.c): wanted on a terminal only and never with
 * --json; drawn only past its threshold, with the models the runtime reported resident; erased
 * on stop; deaf to log messages after it. The line is drawn by calling the ticker's step
 * with chosen times, so nothing here waits on a clock. */
#define _XOPEN_SOURCE 600
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/progress.h"

static void test_wanted_on_a_terminal_only(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_false(cli_progress_wanted(fds[1], false));   /* a pipe or a log file */
    close(fds[0]);
    close(fds[1]);

    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) || unlockpt(master)) {
        if (master >= 0)
            close(master);
        skip();   /* no pseudo-terminals in this sandbox */
    }
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    assert_true(slave >= 0);
    assert_true(cli_progress_wanted(slave, false));
    assert_false(cli_progress_wanted(slave, true));     /* --json: never */
    close(slave);
    close(master);
}

static char *contents(FILE *f)
{
    static char buf[1024];
    fflush(f);
    long len = ftell(f);
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fseek(f, len, SEEK_SET);
    return buf;
}

static void test_drawn_past_the_threshold_and_erased(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    cli_progress p;
    /* started disabled so no ticker thread draws behind the test's back; then enabled by hand */
    assert_int_equal(cli_progress_start(&p, f, "loading models", 1.0, false), 0);
    p.enabled = true;

    assert_false(cli_progress_tick(&p, p.start_s + 0.5));
    assert_string_equal(contents(f), "");

    cli_progress_log(&p, SHOAL_LOG_INFO, "model blind_road resident");
    cli_progress_log(&p, SHOAL_LOG_INFO, "model obstacle resident");
    cli_progress_log(&p, SHOAL_LOG_INFO, "model obstacle unloaded");        /* not a load */
    cli_progress_log(&p, SHOAL_LOG_WARN, "model ghost resident");           /* not INFO */
    cli_progress_log(&p, SHOAL_LOG_INFO, "device auto: using the CPU (x)");
    assert_true(cli_progress_tick(&p, p.start_s + 1.5));
    assert_non_null(strstr(contents(f), "loading models... 1.5 s (2 resident, last obstacle)"));

    cli_progress_stop(&p);
    const char *all = contents(f);
    assert_string_equal(all + strlen(all) - 4, "\r\033[K");   /* the line is erased */
    /* the runtime keeps its log sink: later messages are ignored, not counted or drawn */
    cli_progress_log(&p, SHOAL_LOG_INFO, "model late resident");
    assert_int_equal(p.resident, 2);
    fclose(f);
}

static void test_nothing_when_disabled(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    cli_progress p;
    assert_int_equal(cli_progress_start(&p, f, "loading models", 0.0, false), 0);
    assert_false(cli_progress_tick(&p, p.start_s + 100));
    cli_progress_stop(&p);
    assert_string_equal(contents(f), "");
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wanted_on_a_terminal_only),
        cmocka_unit_test(test_drawn_past_the_threshold_and_erased),
        cmocka_unit_test(test_nothing_when_disabled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
