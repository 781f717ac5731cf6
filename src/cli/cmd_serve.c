/* shoal serve: the HTTP inference server for the glasses.
 *
 * Settings come from, in increasing precedence: built-in defaults, the config's `server:`
 * section, the command line. The runtime is created with one execution context per worker,
 * so every worker's activation arena is planned and charged to the budget at start. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/commands.h"
#include "cli/tuning_env.h"
#include "core/alloc.h"
#include "runtime/config.h"
#include "server/server.h"
#include "shoal.h"

/* The runtime accepts at most this many execution contexts (runtime.c). */
#define MAX_WORKERS 8

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal serve --config FILE [--listen HOST:PORT] [--workers N] [--queue N]\n"
            "                   [--timeout-ms MS] [--max-body BYTES] [--max-connections N]\n"
            "                   [--connection-timeout S] [--token-file FILE] [--device cpu|cuda|auto]\n"
            "                   [--threads N] [--budget BYTES] [--quiet]\n"
            "\n"
            "Serves POST /v1/infer?mode=NAME or ?model=NAME (JPEG/PNG body, or raw RGB with\n"
            "&width=&height=), GET /v1/models, POST /v1/models/{name}/load|unload,\n"
            "PUT /v1/budget {\"bytes\":N}, GET /metrics (Prometheus text), GET /healthz, GET /readyz.\n"
            "\n"
            "Defaults come from the config's server: section, else: listen 127.0.0.1:8080,\n"
            "2 workers (1..%d), queue 16, timeout 10000 ms, body limit 8 MiB, 128 connections,\n"
            "connection timeout 10 s. Each worker is one execution context with its own\n"
            "activation arena, charged to the budget. A full queue answers 429 with Retry-After.\n"
            "With --token-file every endpoint but /healthz and /readyz needs\n"
            "'Authorization: Bearer TOKEN'. SIGTERM/SIGINT stop gracefully (exit 0).\n",
            MAX_WORKERS);
}

/* Reads the first line of a token file. Refuses an empty token or one with spaces or
 * control characters (it travels in a header). */
static int read_token(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "shoal serve: cannot open token file %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        fprintf(stderr, "shoal serve: warning: token file %s is readable by other users (chmod 600 it)\n", path);
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *nl = strpbrk(buf, "\r\n");
    if (nl)
        *nl = '\0';
    n = strlen(buf);
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)buf[i] <= ' ' || buf[i] == 0x7f) {
            fprintf(stderr, "shoal serve: token in %s contains a space or control character\n", path);
            return -1;
        }
    }
    if (!n) {
        fprintf(stderr, "shoal serve: token file %s is empty\n", path);
        return -1;
    }
    if (n >= cap - 1) {
        fprintf(stderr, "shoal serve: token in %s is longer than %zu bytes\n", path, cap - 2);
        return -1;
    }
    return 0;
}

static int quiet;

static void log_stderr(void *user, shoal_log_level level, const char *msg)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level >= (quiet ? SHOAL_LOG_WARN : SHOAL_LOG_INFO) && level <= SHOAL_LOG_ERROR)
        fprintf(stderr, "shoal[%s] %s\n", names[level], msg);
}

static int parse_long(const char *opt, const char *v, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "shoal serve: %s expects an integer in %lld..%lld, got '%s'\n", opt, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* The config's server: section; only read here, the runtime parses the config again. */
static int config_defaults(const char *path, sh_server_params *sp, char *listen, size_t listen_cap,
                           char *token_file, size_t tf_cap)
{
    sh_allocator *a = sh_allocator_create();
    if (!a)
        return -1;
    sh_config *cfg = NULL;
    sh_err err = {0};
    if (sh_config_load_file(a, path, &cfg, &err) != 0) {
        fprintf(stderr, "shoal serve: %s\n", err.msg);
        sh_allocator_destroy(a);
        return -1;
    }
    const sh_server_config *sc = &cfg->server;
    if (sc->listen) {
        snprintf(listen, listen_cap, "%s", sc->listen);
        sp->listen = listen;
    }
    if (sc->workers > 0)
        sp->workers = sc->workers;
    if (sc->queue > 0)
        sp->queue_depth = sc->queue;
    if (sc->timeout_ms > 0)
        sp->timeout_ms = sc->timeout_ms;
    if (sc->max_body_bytes > 0)
        sp->max_body_bytes = (size_t)sc->max_body_bytes;
    if (sc->token_file)
        snprintf(token_file, tf_cap, "%s", sc->token_file);
    sh_config_destroy(cfg);
    sh_allocator_destroy(a);
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    sh_server_params sp = sh_server_default_params();
    const char *config = NULL, *token_file = NULL, *device = NULL;
    const char *cli_listen = NULL;
    long long workers = 0, queue = 0, timeout_ms = 0, max_body = 0, max_conn = 0, conn_timeout = 0, threads = 0,
              budget = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "shoal serve: %s needs a value\n", a);
            return 2;
        }
        int bad = 0;
        if (!strcmp(a, "--config"))
            config = v;
        else if (!strcmp(a, "--listen"))
            cli_listen = v;
        else if (!strcmp(a, "--workers"))
            bad = parse_long(a, v, 1, MAX_WORKERS, &workers);
        else if (!strcmp(a, "--queue"))
            bad = parse_long(a, v, 1, 1 << 20, &queue);
        else if (!strcmp(a, "--timeout-ms"))
            bad = parse_long(a, v, 1, 3600000, &timeout_ms);
        else if (!strcmp(a, "--max-body"))
            bad = parse_long(a, v, 1, (long long)1 << 32, &max_body);
        else if (!strcmp(a, "--max-connections"))
            bad = parse_long(a, v, 1, 4096, &max_conn);
        else if (!strcmp(a, "--connection-timeout"))
            bad = parse_long(a, v, 1, 3600, &conn_timeout);
        else if (!strcmp(a, "--threads"))
            bad = parse_long(a, v, 1, 256, &threads);
        else if (!strcmp(a, "--budget"))
            bad = parse_long(a, v, 1, INT64_MAX, &budget);
        else if (!strcmp(a, "--token-file"))
            token_file = v;
        else if (!strcmp(a, "--device"))
            device = v;
        else {
            fprintf(stderr, "shoal serve: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (bad)
            return 2;
        i++;
    }
    if (!config) {
        fprintf(stderr, "shoal serve: --config FILE is required\n");
        return 2;
    }
    char cfg_listen[128] = "", cfg_token_file[1024] = "";
    if (config_defaults(config, &sp, cfg_listen, sizeof cfg_listen, cfg_token_file, sizeof cfg_token_file))
        return 1;
    if (cli_listen)
        sp.listen = cli_listen;
    if (workers)
        sp.workers = (int)workers;
    if (queue)
        sp.queue_depth = (int)queue;
    if (timeout_ms)
        sp.timeout_ms = (int)timeout_ms;
    if (max_body)
        sp.max_body_bytes = (size_t)max_body;
    if (max_conn)
        sp.max_connections = (int)max_conn;
    if (conn_timeout)
        sp.connection_timeout_s = (int)conn_timeout;
    if (!token_file && cfg_token_file[0])
        token_file = cfg_token_file;
    if (sp.workers > MAX_WORKERS) {
        fprintf(stderr, "shoal serve: %d workers: at most %d (one execution context each)\n", sp.workers, MAX_WORKERS);
        return 2;
    }
    char token[258];
    if (token_file) {
        if (read_token(token_file, token, sizeof token))
            return 2;
        sp.token = token;
    }
    sp.log = log_stderr;

    /* Block the stop signals in every thread (threads inherit the mask); the main thread
     * takes them with sigwait below, so no handler runs in the middle of anything. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512] = "";
    shoal_runtime_params rp = shoal_runtime_default_params();
    if (cli_runtime_tuning("serve", &rp) != 0)
        return 2;
    rp.config_path = config;
    rp.device = device;
    rp.contexts = sp.workers;
    rp.threads = (int)threads;
    rp.budget_bytes = budget;
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
    fprintf(stderr, "shoal serve: listening on %.*s:%d with %d workers (queue %d, timeout %d ms, body limit %zu)%s\n",
            colon ? (int)(colon - sp.listen) : 9, colon ? sp.listen : "127.0.0.1", sh_server_port(srv), sp.workers,
            sp.queue_depth, sp.timeout_ms, sp.max_body_bytes, sp.token ? ", bearer token required" : "");
    fflush(stderr);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    fprintf(stderr, "shoal serve: %s, finishing in-flight requests\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    fflush(stderr);
    sh_server_stop(srv);
    shoal_runtime_destroy(rt);
    memset(token, 0, sizeof token);
    fprintf(stderr, "shoal serve: stopped\n");
    return 0;
}
