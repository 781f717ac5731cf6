/* shoal serve: the HTTP inference server for the glasses. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "server/server.h"
#include "shoal.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal serve --config FILE [--listen HOST:PORT] [--workers N] [--queue N]\n"
            "                   [--timeout-ms MS] [--max-body BYTES] [--token-file FILE] [--device cpu|cuda]\n"
            "\n"
            "Serves POST /v1/infer?mode=NAME (JPEG/PNG body, or raw RGB with &width=&height=),\n"
            "GET /v1/models, POST /v1/models/{name}/load|unload, PUT /v1/budget {\"bytes\":N},\n"
            "GET /metrics (Prometheus text), GET /healthz, GET /readyz.\n"
            "Listens on 127.0.0.1:8080 unless told otherwise. Each worker is one execution\n"
            "context with its own activation arena, charged to the budget. A full queue\n"
            "answers 429 with Retry-After. SIGTERM/SIGINT stop gracefully.\n");
}

static int read_token(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return n ? 0 : -1;
}

static void log_stderr(void *user, shoal_log_level level, const char *msg)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level >= SHOAL_LOG_INFO)
        fprintf(stderr, "shoal[%s] %s\n", names[level], msg);
}

int cmd_serve(int argc, char **argv)
{
    sh_server_params sp = sh_server_default_params();
    const char *config = NULL, *token_file = NULL, *device = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "shoal serve: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--config"))
            config = v;
        else if (!strcmp(a, "--listen"))
            sp.listen = v;
        else if (!strcmp(a, "--workers"))
            sp.workers = atoi(v);
        else if (!strcmp(a, "--queue"))
            sp.queue_depth = atoi(v);
        else if (!strcmp(a, "--timeout-ms"))
            sp.timeout_ms = atoi(v);
        else if (!strcmp(a, "--max-body"))
            sp.max_body_bytes = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--token-file"))
            token_file = v;
        else if (!strcmp(a, "--device"))
            device = v;
        else {
            fprintf(stderr, "shoal serve: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!config) {
        fprintf(stderr, "shoal serve: --config FILE is required\n");
        return 2;
    }
    if (sp.workers < 1 || sp.workers > 64 || sp.queue_depth < 1 || sp.timeout_ms < 1 || sp.max_body_bytes < 1) {
        fprintf(stderr, "shoal serve: --workers 1..64, --queue >= 1, --timeout-ms >= 1, --max-body >= 1\n");
        return 2;
    }
    char token[256];
    if (token_file) {
        if (read_token(token_file, token, sizeof token)) {
            fprintf(stderr, "shoal serve: cannot read a token from %s\n", token_file);
            return 2;
        }
        sp.token = token;
    }

    /* Block the stop signals in every thread; the main thread waits for them below. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512] = "";
    shoal_runtime_params rp = shoal_runtime_default_params();
    rp.config_path = config;
    rp.device = device;
    rp.contexts = sp.workers;
    rp.start_monitor = 1;
    rp.log = log_stderr;
    rp.error = err;
    rp.error_cap = sizeof err;
    shoal_runtime_t rt;
    if (shoal_runtime_create(&rp, &rt) != SHOAL_OK) {
        fprintf(stderr, "shoal serve: %s\n", err);
        return 1;
    }
    sh_server *srv;
    sh_err e = {0};
    if (sh_server_start(rt, &sp, &srv, &e) != SHOAL_OK) {
        fprintf(stderr, "shoal serve: %s\n", e.msg);
        shoal_runtime_destroy(rt);
        return 1;
    }
    const char *colon = strrchr(sp.listen, ':');
    fprintf(stderr, "shoal serve: listening on %.*s:%d with %d workers (queue %d)\n",
            colon ? (int)(colon - sp.listen) : 9, colon ? sp.listen : "127.0.0.1", sh_server_port(srv),
            sp.workers, sp.queue_depth);
    fflush(stderr);
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "shoal serve: signal %d, finishing in-flight requests\n", sig);
    sh_server_stop(srv);
    shoal_runtime_destroy(rt);
    fprintf(stderr, "shoal serve: stopped\n");
    return 0;
}
