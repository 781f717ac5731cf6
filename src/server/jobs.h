/* A bounded queue of inference jobs served by a fixed set of worker threads.
 *
 * A job is shared by two owners: the HTTP handler that waits for it and the queue/worker
 * that runs it; whichever drops the last reference frees it. A handler that gives up
 * (timeout) releases its reference; a worker that then pops the job skips it instead of
 * running a frame nobody will read, so a burst of timed-out requests does not keep the
 * workers busy after the fact; one whose client went away is taken out of the queue at once
 * (sh_job_cancel), so it neither runs nor holds a slot another request could use.
 *
 * The queue also keeps the server's host-memory gate for decoded frames: a request charges
 * the bytes its decode will need before decoding (sh_job_queue_charge) and a job keeps the
 * frame's share charged until the frame is freed, so frames waiting in the queue count too. */
#ifndef SHOAL_SERVER_JOBS_H
#define SHOAL_SERVER_JOBS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "shoal.h"

typedef struct sh_job {
    /* request, set before sh_job_submit */
    shoal_runtime_t rt;         /* the runtime to run on (the server's current one at submit) */
    void (*done_with_rt)(void *user);   /* called once the job no longer uses rt; may be NULL */
    void *done_with_rt_user;
    char target[128];           /* mode or model name */
    bool is_model;
    shoal_image frame;          /* owned by the job (shoal_image_free) */
    shoal_video_t video;        /* a stream's video state (modes only), or NULL: the frame alone */
    bool owns_video;            /* the stream gave up waiting: the job frees the video */
    size_t frame_charge;        /* bytes of the host gate held for the frame until it is freed */
    /* result, valid once done */
    int status;
    char *json;                 /* results JSON (from shoal_results_to_json), owned by the job */
    char error[512];
    double queue_ms, run_ms;
    bool ran_beside_others;     /* another job was running when it started or ended: a budget
                                   refusal may have been caused by that job's models */
    /* bookkeeping, under the queue's lock */
    int refs;                   /* the waiting handler + the queue/worker */
    bool done;
    double enqueued_at;
    pthread_cond_t done_cv;
} sh_job;

typedef struct sh_job_queue sh_job_queue;

typedef struct sh_job_queue_stats {
    int waiting;                /* jobs queued, not yet taken by a worker */
    int running;                /* jobs a worker is running now */
    int capacity;               /* waiting jobs admitted before SHOAL_ERR_BUSY */
    int workers;
    uint64_t completed;         /* jobs run to the end (success or failure) */
    uint64_t abandoned;         /* jobs skipped because their requester had timed out */
    uint64_t client_gone;       /* jobs taken out of the queue because their client went away */
    size_t host_limit;          /* bytes of decoded frames and decodes in progress allowed */
    size_t host_in_use, host_peak;
    uint64_t host_refused;      /* charges refused because the limit was reached */
} sh_job_queue_stats;

/* NULL when out of memory or no worker thread could start. `host_limit` bounds the bytes
 * charged with sh_job_queue_charge. Free with sh_job_queue_destroy. */
sh_job_queue *sh_job_queue_create(sh_allocator *a, int workers, int depth, size_t host_limit);
/* Stops taking jobs, lets the workers finish what is queued, joins them, frees. Every
 * handler must have released its jobs before (the server joins its connections first). */
void sh_job_queue_destroy(sh_job_queue *q);

/* A new job holding the caller's reference, or NULL when out of memory. */
sh_job *sh_job_new(sh_job_queue *q);
/* Queues the job: SHOAL_ERR_BUSY when the queue is full, SHOAL_ERR_STATE when stopping; on
 * failure the job stays the caller's alone. */
int sh_job_submit(sh_job_queue *q, sh_job *job);
/* Waits until done or timeout_ms passed (monotonic clock); true when done. */
bool sh_job_wait(sh_job_queue *q, sh_job *job, int timeout_ms);
/* Drops the caller's reference (the worker drops its own). Accepts NULL. */
void sh_job_release(sh_job_queue *q, sh_job *job);
/* The requester gives up (`client_left`: its client went away, counted in client_gone;
 * else it timed out, counted in abandoned): a job still waiting in the queue is taken out and
 * true is returned; a job already running is left to finish. The caller's reference is
 * untouched either way. */
bool sh_job_cancel(sh_job_queue *q, sh_job *job, bool client_left);

/* Charges `bytes` to the host gate: false (nothing charged) when it would go over the limit.
 * Every successful charge is given back with sh_job_queue_uncharge, or handed to a job in
 * frame_charge (the job gives it back when it frees the frame). */
bool sh_job_queue_charge(sh_job_queue *q, size_t bytes);
void sh_job_queue_uncharge(sh_job_queue *q, size_t bytes);

/* A hint, not a reservation: false when a submit now would get SHOAL_ERR_BUSY. The server
 * asks before decoding an image so that overload costs no decode work. */
bool sh_job_queue_has_room(sh_job_queue *q);
void sh_job_queue_get_stats(sh_job_queue *q, sh_job_queue_stats *out);

#endif
