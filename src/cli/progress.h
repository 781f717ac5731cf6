/* A progress line on stderr while the runtime loads models: shown only on a terminal and
 * never beside --json, only once loading has taken longer than a threshold (a second), and
 * erased when loading ends so the command's own output is unchanged.
 *
 *   cli_progress pr;
 *   cli_progress_start(&pr, stderr, "loading models", 1.0, cli_progress_wanted(2, json));
 *   params.log = cli_progress_log;  params.log_user = &pr;   // counts models as they arrive
 *   shoal_runtime_create(&params, &rt);
 *   cli_progress_stop(&pr);
 */
#ifndef SHOAL_CLI_PROGRESS_H
#define SHOAL_CLI_PROGRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include "shoal.h"

typedef struct cli_progress {
    FILE *out;
    const char *what;
    double threshold_s, start_s;
    bool enabled, running, stopping, shown;
    atomic_bool done;            /* stopped: log messages are ignored from then on */
    int resident;                /* models the runtime reported resident so far */
    char last[64];               /* the latest of them */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
} cli_progress;

/* Whether a progress line belongs on fd: a terminal, and not a --json run. */
bool cli_progress_wanted(int fd, bool json);

/* Starts the ticker thread when enabled (otherwise start, log and stop do nothing). Returns 0,
 * or -1 when the thread could not start (loading then goes on without a progress line). */
int cli_progress_start(cli_progress *p, FILE *out, const char *what, double threshold_s, bool enabled);

/* A shoal_log_fn: counts "model NAME resident" messages; user is the cli_progress. Ignores
 * everything once the progress is stopped, so it may stay the runtime's sink. */
void cli_progress_log(void *user, shoal_log_level level, const char *msg);

/* Draws the line for time now_s (seconds on the clock start used) if the threshold has
 * passed; the ticker calls it a few times a second. Returns whether it drew. */
bool cli_progress_tick(cli_progress *p, double now_s);

/* Stops the ticker and erases the line if one was drawn. Every start needs one stop. */
void cli_progress_stop(cli_progress *p);

/* The clock the ticker uses (CLOCK_MONOTONIC, seconds). */
double cli_progress_now(void);

#endif
