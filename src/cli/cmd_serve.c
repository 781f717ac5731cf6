/* shoal serve: the HTTP inference server for the glasses.
 *
 * Settings come from, in increasing precedence: built-in defaults (which equal a config
 * without a server: section), the config's `server:` section, the command line. The runtime
 * is created with one execution context per worker, so every worker's activation arena is
 * planned and charged to the budget at start.
 *
 * Signals: SIGTERM/SIGINT drain and stop. SIGHUP reloads the config: a new runtime is built
 * from the file beside the old one (so for a moment both hold memory), then swapped in;
 * requests already running finish on the old one, which is freed once they are done. A
 * config that does not load or build is logged and the old one keeps serving. The server:
 * section and the command line are read at start only. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/tuning_env.h"
#include "core/alloc.h"
#include "runtime/config.h"
#include "server/listen.h"
#include "server/server.h"
#include "vision/image.h"
#include "shoal.h"

/* The runtime accepts at most this many execution contexts (runtime.c). */
#define MAX_WORKERS 8
#define CMD "serve"

static void usage(FILE *f)
{
    sh_server_params d = sh_server_default_params();
    fprintf(f,
            "usage: shoal serve --config FILE [--listen HOST:PORT|[IPV6]:PORT] [--workers N] [--queue N]\n"
            "                   [--timeout-ms MS] [--max-body SIZE] [--max-connections N]\n"
            "                   [--max-connections-per-client N] [--connection-timeout S]\n"
            "                   [--receive-timeout S] [--max-pixels N] [--host-limit SIZE]\n"
            "                   [--token-file FILE] [--device cpu|cuda|auto] [--threads N]\n"
            "                   [--budget SIZE|PERCENT] [--log-level debug|info|warn|error] [--log-json]\n"
            "                   [--max-streams N] [--stream-max-frame SIZE] [--stream-idle-timeout S]\n"
            "                   [--stream-heartbeat S] [--drain-ms MS] [--quiet]\n"
            "\n"
            "Serves POST /v1/infer?mode=NAME or ?model=NAME (JPEG/PNG body, or raw RGB with\n"
            "&width=&height=; without either, the config's default_mode), GET /v1/models,\n"
            "POST /v1/models/{name}/load|unload, PUT /v1/budget {\"bytes\":N or \"512MB\" or \"60%%\"},\n"
            "GET /metrics (Prometheus text), GET /healthz, GET /readyz, and GET /v1/stream\n"
            "[?client=ID&mode=NAME]: a WebSocket of camera frames, the newest one served, round-robin\n"
            "over the streams (docs/deploy.md has the frame header).\n"
            "\n"
            "Defaults come from the config's server: section, else: listen %s,\n"
            "%d workers (1..%d), queue %d, timeout %d ms, body limit %zu bytes (%zu MiB),\n"
            "%d connections, %d per client, connection (idle) timeout %d s, receive timeout %d s\n"
            "(headers and body of a request, in all), images up to %lld pixels, decoded images in\n"
            "flight up to %zu bytes (%zu MiB), %d streams, stream messages up to %zu bytes, streams\n"
            "pinged after %d s and closed after %d s of silence, drain %d ms (/readyz answers 503\n"
            "that long after SIGTERM before anything closes). SIZE: 4096, 512MB, 1.5GiB; --budget also 60%%.\n"
            "Each worker is one execution context with its own activation arena, charged to the\n"
            "budget. A full queue or host limit answers 429 with Retry-After; a larger image 413.\n"
            "With --token-file every endpoint but /healthz and /readyz needs\n"
            "'Authorization: Bearer TOKEN'. SIGTERM/SIGINT stop gracefully (exit 0); SIGHUP\n"
            "reloads the config's models and modes without dropping requests.\n",
            d.listen, d.workers, MAX_WORKERS, d.queue_depth, d.timeout_ms, d.max_body_bytes, d.max_body_bytes >> 20,
            d.max_connections, d.max_connections_per_client, d.connection_timeout_s, d.receive_timeout_s,
            (long long)d.max_pixels, d.host_limit_bytes, d.host_limit_bytes >> 20, d.max_streams,
            d.stream_max_frame_bytes, d.stream_heartbeat_s, d.stream_idle_timeout_s, d.drain_ms);
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

static shoal_log_level log_threshold = SHOAL_LOG_INFO;
static bool log_json;

/* JSON string contents of msg (quotes, backslashes and control characters escaped). */
static void put_json_string(FILE *f, const char *msg)
{
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
}

/* One line per message on stderr (journald keeps it). With --log-json each line is an object
 * {"ts", "level", "msg"}; a message that is itself an object (the server's access lines with
 * --log-json) has its fields merged in instead. */
static void log_stderr(void *user, shoal_log_level level, const char *msg)
{
    (void)user;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level < log_threshold || level > SHOAL_LOG_ERROR)
        return;
    if (!log_json) {
        fprintf(stderr, "shoal[%s] %s\n", names[level], msg);
        return;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    flockfile(stderr);
    fprintf(stderr, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",", ts, (long)(tv.tv_usec / 1000), names[level]);
    size_t n = strlen(msg);
    if (n >= 2 && msg[0] == '{' && msg[n - 1] == '}') {
        fprintf(stderr, "%s\n", msg + 1);
    } else {
        fputs("\"msg\":\"", stderr);
        put_json_string(stderr, msg);
        fputs("\"}\n", stderr);
    }
    funlockfile(stderr);
}

/* What the command takes from the config at start (the runtime parses the file itself). */
typedef struct serve_config {
    char listen[128];
    char token_file[1024];
    char default_mode[128];
} serve_config;

/* The config's server: section and default mode. */
static int config_defaults(const char *path, sh_server_params *sp, serve_config *sc_out, bool quiet_errors)
{
    sh_allocator *a = sh_allocator_create();
    if (!a)
        return -1;
    sh_config *cfg = NULL;
    sh_err err = {0};
    if (sh_config_load_file(a, path, &cfg, &err) != 0) {
        if (!quiet_errors)
            fprintf(stderr, "shoal serve: %s\n", err.msg);
        else
            log_stderr(NULL, SHOAL_LOG_ERROR, err.msg);
        sh_allocator_destroy(a);
        return -1;
    }
    const sh_server_config *sc = &cfg->server;
    if (sp) {
        if (sc->listen) {
            snprintf(sc_out->listen, sizeof sc_out->listen, "%s", sc->listen);
            sp->listen = sc_out->listen;
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
            snprintf(sc_out->token_file, sizeof sc_out->token_file, "%s", sc->token_file);
    }
    sc_out->default_mode[0] = '\0';
    if (cfg->default_mode >= 0 && (size_t)cfg->default_mode < cfg->n_modes)
        snprintf(sc_out->default_mode, sizeof sc_out->default_mode, "%s", cfg->modes[cfg->default_mode].name);
    sh_config_destroy(cfg);
    sh_allocator_destroy(a);
    return 0;
}

/* SIGHUP: build a runtime from the config as it is now and swap it in; on any failure the
 * old one stays and the reason is logged. Returns the runtime serving afterwards. */
static shoal_runtime_t reload(const char *config, const shoal_runtime_params *base, sh_server *srv,
                              shoal_runtime_t current)
{
    char msg[700];
    snprintf(msg, sizeof msg, "SIGHUP: reloading %s", config);
    log_stderr(NULL, SHOAL_LOG_INFO, msg);
    serve_config sc;
    if (config_defaults(config, NULL, &sc, true) != 0) {
        log_stderr(NULL, SHOAL_LOG_ERROR, "reload failed: the config above does not load; keeping the old one");
        return current;
    }
    char err[512] = "";
    shoal_runtime_params rp = *base;
    rp.error = err;
    rp.error_cap = sizeof err;
    shoal_runtime_t fresh = NULL;
    if (shoal_runtime_create(&rp, &fresh) != SHOAL_OK) {
        snprintf(msg, sizeof msg, "reload failed: %s; keeping the old config", err);
        log_stderr(NULL, SHOAL_LOG_ERROR, msg);
        return current;
    }
    shoal_runtime_t old = NULL;
    if (sh_server_swap_runtime(srv, fresh, sc.default_mode[0] ? sc.default_mode : NULL, &old) != SHOAL_OK) {
        shoal_runtime_destroy(fresh);
        log_stderr(NULL, SHOAL_LOG_ERROR, "reload failed: out of memory; keeping the old config");
        return current;
    }
    shoal_runtime_destroy(old);
    snprintf(msg, sizeof msg, "reloaded %s (%d models, %d modes%s%s)", config, shoal_runtime_model_count(fresh),
             shoal_runtime_mode_count(fresh), sc.default_mode[0] ? ", default mode " : "", sc.default_mode);
    log_stderr(NULL, SHOAL_LOG_INFO, msg);
    return fresh;
}

static int parse_log_level(const char *v)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(v, names[i])) {
            log_threshold = (shoal_log_level)i;
            return 0;
        }
    fprintf(stderr, "shoal serve: --log-level expects debug, info, warn or error, got '%s'\n", v);
    return -1;
}

int cmd_serve(int argc, char **argv)
{
    sh_server_params sp = sh_server_default_params();
    const char *config = NULL, *token_file = NULL, *device = NULL, *cli_listen = NULL;
    /* 0 = not given on the command line */
    int workers = 0, queue = 0, timeout_ms = 0, max_conn = 0, per_client = 0, conn_timeout = 0, recv_timeout = 0,
        threads = 0, max_streams = 0, stream_idle = 0, heartbeat = 0, drain_ms = -1;
    long long max_pixels = 0;
    sh_config_size max_body = {0}, host_limit = {0}, budget = {0}, stream_frame = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) {
            log_threshold = SHOAL_LOG_WARN;
            continue;
        }
        if (!strcmp(a, "--log-json")) {
            log_json = true;
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
            bad = cli_int32(CMD, a, v, 1, MAX_WORKERS, &workers);
        else if (!strcmp(a, "--queue"))
            bad = cli_int32(CMD, a, v, 1, 1 << 16, &queue);
        else if (!strcmp(a, "--timeout-ms"))
            bad = cli_int32(CMD, a, v, 1, 3600000, &timeout_ms);
        else if (!strcmp(a, "--max-body"))
            bad = cli_size(CMD, a, v, false, &max_body);
        else if (!strcmp(a, "--max-connections"))
            bad = cli_int32(CMD, a, v, 1, 4096, &max_conn);
        else if (!strcmp(a, "--max-connections-per-client"))
            bad = cli_int32(CMD, a, v, 1, 4096, &per_client);
        else if (!strcmp(a, "--connection-timeout"))
            bad = cli_int32(CMD, a, v, 1, 3600, &conn_timeout);
        else if (!strcmp(a, "--receive-timeout"))
            bad = cli_int32(CMD, a, v, 1, 3600, &recv_timeout);
        else if (!strcmp(a, "--max-pixels"))
            bad = cli_int(CMD, a, v, 1, SH_IMAGE_MAX_PIXELS, &max_pixels);
        else if (!strcmp(a, "--host-limit"))
            bad = cli_size(CMD, a, v, false, &host_limit);
        else if (!strcmp(a, "--max-streams"))
            bad = cli_int32(CMD, a, v, 1, 4096, &max_streams);
        else if (!strcmp(a, "--stream-max-frame"))
            bad = cli_size(CMD, a, v, false, &stream_frame);
        else if (!strcmp(a, "--stream-idle-timeout"))
            bad = cli_int32(CMD, a, v, 2, 3600, &stream_idle);
        else if (!strcmp(a, "--stream-heartbeat"))
            bad = cli_int32(CMD, a, v, 1, 3600, &heartbeat);
        else if (!strcmp(a, "--drain-ms"))
            bad = cli_int32(CMD, a, v, 0, 600000, &drain_ms);
        else if (!strcmp(a, "--threads"))
            bad = cli_int32(CMD, a, v, 1, 256, &threads);
        else if (!strcmp(a, "--budget"))
            bad = cli_size(CMD, a, v, true, &budget);
        else if (!strcmp(a, "--log-level"))
            bad = parse_log_level(v);
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
    /* Sizes are checked here rather than in cli_size: they must be whole bytes in range. */
    if (max_body.kind == SH_SIZE_BYTES && (max_body.bytes < 1 || max_body.bytes > ((uint64_t)1 << 32))) {
        fprintf(stderr, "shoal serve: --max-body expects 1 byte..4GiB, got %llu bytes\n",
                (unsigned long long)max_body.bytes);
        return 2;
    }
    if (host_limit.kind == SH_SIZE_BYTES && (host_limit.bytes < 1 || host_limit.bytes > ((uint64_t)1 << 40))) {
        fprintf(stderr, "shoal serve: --host-limit expects 1 byte..1TiB, got %llu bytes\n",
                (unsigned long long)host_limit.bytes);
        return 2;
    }
    if (stream_frame.kind == SH_SIZE_BYTES && (stream_frame.bytes < 64 || stream_frame.bytes > ((uint64_t)1 << 30))) {
        fprintf(stderr, "shoal serve: --stream-max-frame expects 64 bytes..1GiB, got %llu bytes\n",
                (unsigned long long)stream_frame.bytes);
        return 2;
    }
    if ((budget.kind == SH_SIZE_BYTES && (budget.bytes < 1 || budget.bytes > (uint64_t)INT64_MAX)) ||
        (budget.kind == SH_SIZE_PERCENT && !(budget.percent > 0 && budget.percent <= 100))) {
        fprintf(stderr, "shoal serve: --budget expects a size >= 1 byte or a percentage in (0, 100]\n");
        return 2;
    }
    if (!config) {
        fprintf(stderr, "shoal serve: --config FILE is required\n");
        return 2;
    }
    serve_config sc = {0};
    if (config_defaults(config, &sp, &sc, false))
        return 1;
    if (cli_listen)
        sp.listen = cli_listen;
    if (workers)
        sp.workers = workers;
    if (queue)
        sp.queue_depth = queue;
    if (timeout_ms)
        sp.timeout_ms = timeout_ms;
    if (max_body.kind == SH_SIZE_BYTES)
        sp.max_body_bytes = (size_t)max_body.bytes;
    if (max_conn)
        sp.max_connections = max_conn;
    if (per_client)
        sp.max_connections_per_client = per_client;
    if (conn_timeout)
        sp.connection_timeout_s = conn_timeout;
    if (recv_timeout)
        sp.receive_timeout_s = recv_timeout;
    if (max_pixels)
        sp.max_pixels = max_pixels;
    if (host_limit.kind == SH_SIZE_BYTES)
        sp.host_limit_bytes = (size_t)host_limit.bytes;
    if (max_streams)
        sp.max_streams = max_streams;
    if (stream_frame.kind == SH_SIZE_BYTES)
        sp.stream_max_frame_bytes = (size_t)stream_frame.bytes;
    if (stream_idle)
        sp.stream_idle_timeout_s = stream_idle;
    if (heartbeat)
        sp.stream_heartbeat_s = heartbeat;
    if (drain_ms >= 0)
        sp.drain_ms = drain_ms;
    if (sp.stream_heartbeat_s >= sp.stream_idle_timeout_s) {
        fprintf(stderr, "shoal serve: --stream-heartbeat (%d s) must be shorter than --stream-idle-timeout (%d s)\n",
                sp.stream_heartbeat_s, sp.stream_idle_timeout_s);
        return 2;
    }
    if (sc.default_mode[0])
        sp.default_mode = sc.default_mode;
    sp.log_json = log_json;
    if (!token_file && sc.token_file[0])
        token_file = sc.token_file;
    if (sp.workers > MAX_WORKERS) {
        fprintf(stderr, "shoal serve: %d workers: at most %d (one execution context each)\n", sp.workers, MAX_WORKERS);
        return 2;
    }
    sh_err lerr = {0};
    if (sh_listen_check(sp.listen, &lerr) != 0) {   /* before minutes of model loading */
        fprintf(stderr, "shoal serve: %s\n", lerr.msg);
        return 2;
    }
    char token[258];
    if (token_file) {
        if (read_token(token_file, token, sizeof token))
            return 2;
        sp.token = token;
    }
    sp.log = log_stderr;

    /* Block the signals in every thread (threads inherit the mask); the main thread takes
     * them with sigwait below, so no handler runs in the middle of anything. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512] = "";
    shoal_runtime_params rp = shoal_runtime_default_params();
    if (cli_runtime_tuning("serve", &rp) != 0)
        return 2;
    rp.config_path = config;
    rp.device = device;
    rp.contexts = sp.workers;
    rp.threads = threads;
    if (budget.kind == SH_SIZE_BYTES)
        rp.budget_bytes = (int64_t)budget.bytes;
    else if (budget.kind == SH_SIZE_PERCENT)
        rp.budget_fraction = budget.percent / 100.0;
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
    fprintf(stderr,
            "shoal serve: listening on %.*s:%d with %d workers (queue %d, timeout %d ms, body limit %zu bytes, "
            "%d connections, %d per client, receive timeout %d s, max pixels %lld, host limit %zu bytes%s%s)%s\n",
            colon ? (int)(colon - sp.listen) : 9, colon ? sp.listen : "127.0.0.1", sh_server_port(srv), sp.workers,
            sp.queue_depth, sp.timeout_ms, sp.max_body_bytes, sp.max_connections, sp.max_connections_per_client,
            sp.receive_timeout_s, (long long)sp.max_pixels, sp.host_limit_bytes,
            sp.default_mode ? ", default mode " : "", sp.default_mode ? sp.default_mode : "",
            sp.token ? ", bearer token required" : "");
    fflush(stderr);
    int sig = 0;
    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        rt = reload(config, &rp, srv, rt);
    }
    fprintf(stderr, "shoal serve: %s, finishing in-flight requests\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    fflush(stderr);
    sh_server_stop(srv);
    shoal_runtime_destroy(rt);
    memset(token, 0, sizeof token);
    fprintf(stderr, "shoal serve: stopped\n");
    return 0;
}
