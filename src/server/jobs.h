/* A bounded queue of inference jobs served by a fixed set of worker threads.
 *
 * A job is shared by two owners: the HTTP handler that waits for it and the queue/worker
 * that runs it; whichever drops the last reference frees it. A handler that gives up
 * (timeout) releases its reference; a worker that then pops the job skips it instead of
 * running a frame nobody will read, so a burst of timed-out requests does not keep the
 * workers busy after the fact. */
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
    char target[128];           /* mode or model name */
    bool is_model;
    shoal_image frame;          /* owned by the job (shoal_image_free) */
    /* result, valid once done */
    int status;
    char *json;                 /* results JSON (from shoal_results_to_json), owned by the job */
    char error[512];
    double queue_ms, run_ms;
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
    uint64_t abandoned;         /* jobs skipped because their requester had given up */
} sh_job_queue_stats;

/* NULL when out of memory or no worker thread could start. Free with sh_job_queue_destroy. */
sh_job_queue *sh_job_queue_create(sh_allocator *a, shoal_runtime_t rt, int workers, int depth);
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

/* A hint, not a reservation: false when a submit now would get SHOAL_ERR_BUSY. The server
 * asks before decoding an image so that overload costs no decode work. */
bool sh_job_queue_has_room(sh_job_queue *q);
void sh_job_queue_get_stats(sh_job_queue *q, sh_job_queue_stats *out);

#endif
