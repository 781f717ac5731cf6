/* Camera streams over WebSocket (/v1/stream): the newest frame of every wearer, served
 * round-robin on the server's workers.
 *
 * Each stream is read by its own connection thread. A binary message is one frame: the
 * header below, then a JPEG (or PNG). It goes into the stream's single waiting slot; a frame
 * arriving while one is already waiting replaces it and the replaced one counts as dropped,
 * so nothing stale queues up behind a slow device. `lanes` dispatcher threads take waiting
 * frames in round-robin order over the streams (a stream with a frame in flight is skipped
 * until its answer is out, so a fast sender gets one frame per turn like everyone else),
 * decode them, run them as jobs of the server's queue and send each result back as a text
 * message carrying the frame's sequence number and age.
 *
 * Frame header (all integers big-endian), then the image bytes:
 *   0  4  magic "SHF1"
 *   4  8  sequence number (the client's, echoed in the result)
 *  12  8  capture time, microseconds since the Unix epoch (0 = unknown)
 *  20  1  length L of a mode name (0 = keep the stream's mode)
 *  21  L  mode name: switches the stream's mode from this frame on
 * A text message {"mode":"NAME"} switches the mode too. Results:
 *   {"type":"result","seq":S,"mode":"M","age_ms":A,"server_ms":B,"queue_ms":Q,"run_ms":R,
 *    "dropped":D,"results":{...}}   age_ms: capture to result on the server's clock (null
 *   when the capture time is unknown); server_ms: arrival to result; D: this stream's drops.
 * A frame replaced while waiting is reported at once: {"type":"dropped","seq":S,"dropped":D}.
 * Errors about one frame or message: {"type":"error","seq":S,"code":N,"message":"..."}.
 * Before its close frame the server sends {"type":"bye","received":R,"processed":P,"dropped":D}
 * (after answering the frame in flight; a frame still waiting counts as dropped), so only a
 * connection that breaks loses frames without a count.
 *
 * Liveness: the server pings a stream silent for `heartbeat_s` and closes one silent for
 * `idle_timeout_s` (any message, a pong included, counts, and so does a frame of its own still
 * waiting or running). Memory per stream: the message
 * being read and one waiting frame (max_frame_bytes each), plus its frame in flight. */
#ifndef SHOAL_SERVER_STREAM_H
#define SHOAL_SERVER_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "server/jobs.h"
#include "shoal.h"

#define SH_STREAM_HEADER_BYTES 21

typedef struct sh_stream_params {
    int max_streams;            /* open streams; more are refused (503) before the upgrade */
    size_t max_frame_bytes;     /* one message, header included; larger closes with 1009 */
    int idle_timeout_s;         /* a stream silent this long is closed */
    int heartbeat_s;            /* a stream silent this long is pinged */
    int frame_timeout_ms;       /* a frame's decode, queue and run */
    int lanes;                  /* frames in flight at once over all streams */
    int64_t max_pixels;
} sh_stream_params;

/* The runtime the server serves with now, held until released (a reload waits for it). */
typedef struct sh_stream_runtime {
    void *(*acquire)(void *user, shoal_runtime_t *rt, const char **default_mode);
    void (*release)(void *token);
    void *user;
} sh_stream_runtime;

typedef struct sh_stream_stats {
    int streams;                /* open now */
    uint64_t opened, frames_received, frames_processed, frames_dropped, frames_failed;
    uint64_t age_samples;       /* results in the window below */
    double age_ms_p50, age_ms_p99;   /* capture (or arrival) to result, last 1024 results */
} sh_stream_stats;

typedef struct sh_stream_hub sh_stream_hub;

/* Starts the dispatcher threads. NULL when out of memory or a thread cannot start. */
sh_stream_hub *sh_stream_hub_create(sh_allocator *a, const sh_stream_params *p, sh_job_queue *jobs,
                                    const sh_stream_runtime *rt, shoal_log_fn log, void *log_user);
/* Asks every stream to close (1001, going away), waits for them to end, joins the
 * dispatchers and frees. Accepts NULL. */
void sh_stream_hub_destroy(sh_stream_hub *h);
/* Asks every stream to close (1001) without waiting: used when the server starts stopping. */
void sh_stream_hub_close_all(sh_stream_hub *h);

/* Reserves a stream slot before the upgrade: false when max_streams are open or the hub is
 * closing. A reserved slot is used by sh_stream_serve or given back with sh_stream_unreserve. */
bool sh_stream_reserve(sh_stream_hub *h);
void sh_stream_unreserve(sh_stream_hub *h);
/* Serves one upgraded connection on `fd` until it closes (blocks; the caller then closes the
 * socket). `pre`: bytes the HTTP layer had already read past the handshake. `client_id` (may be NULL) is for logs; `mode` (may be NULL) the initial mode, else
 * the runtime's default one. Uses the slot reserved before. */
void sh_stream_serve(sh_stream_hub *h, int fd, const void *pre, size_t pre_len, const char *client_id,
                     const char *mode);

void sh_stream_get_stats(sh_stream_hub *h, sh_stream_stats *out);

#endif
