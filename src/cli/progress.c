#include "cli/progress.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS 250000000L

double cli_progress_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

bool cli_progress_wanted(int fd, bool json)
{
    return !json && isatty(fd);
}

bool cli_progress_tick(cli_progress *p, double now_s)
{
    if (!p->enabled || now_s - p->start_s < p->threshold_s)
        return false;
    char detail[96] = "";
    if (p->resident > 0)
        snprintf(detail, sizeof detail, " (%d resident, last %s)", p->resident, p->last);
    /* \r and erase-to-end: one line rewritten in place */
    fprintf(p->out, "\r\033[K%s... %.1f s%s", p->what, now_s - p->start_s, detail);
    fflush(p->out);
    p->shown = true;
    return true;
}

static void *ticker(void *arg)
{
    cli_progress *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        cli_progress_tick(p, cli_progress_now());
        struct timespec ts;   /* pthread_cond_timedwait's deadline is on the real-time clock */
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += TICK_NS;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->wake, &p->lock, &ts);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int cli_progress_start(cli_progress *p, FILE *out, const char *what, double threshold_s, bool enabled)
{
    memset(p, 0, sizeof *p);
    atomic_init(&p->done, false);
    p->out = out;
    p->what = what;
    p->threshold_s = threshold_s;
    p->start_s = cli_progress_now();
    p->enabled = enabled;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (!enabled)
        return 0;
    if (pthread_create(&p->thread, NULL, ticker, p) != 0) {
        p->enabled = false;
        return -1;
    }
    p->running = true;
    return 0;
}

void cli_progress_log(void *user, shoal_log_level level, const char *msg)
{
    cli_progress *p = user;
    /* the runtime keeps its log sink after create: later messages find the line gone */
    if (atomic_load(&p->done))
        return;
    size_t len = strlen(msg);
    static const char prefix[] = "model ", suffix[] = " resident";
    size_t pl = sizeof prefix - 1, sl = sizeof suffix - 1;
    if (level != SHOAL_LOG_INFO || len <= pl + sl || strncmp(msg, prefix, pl) || strcmp(msg + len - sl, suffix))
        return;
    pthread_mutex_lock(&p->lock);
    p->resident++;
    snprintf(p->last, sizeof p->last, "%.*s", (int)(len - pl - sl), msg + pl);
    pthread_mutex_unlock(&p->lock);
}

void cli_progress_stop(cli_progress *p)
{
    if (p->running) {
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
        p->running = false;
    }
    if (p->shown) {
        fputs("\r\033[K", p->out);
        fflush(p->out);
        p->shown = false;
    }
    atomic_store(&p->done, true);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
}
