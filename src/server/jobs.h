/* A bounded queue of inference jobs served by a fixed set of worker threads. */
#ifndef SHOAL_SERVER_JOBS_H
#define SHOAL_SERVER_JOBS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/alloc.h"
#include "shoal.h"

typedef struct sh_job {
    /* request */
    char target[128];           /* mode or model name */
    bool is_model;
    shoal_image frame;          /* owned by the job */
    /* result, valid once done */
    int status;
    char *json;                 /* results JSON (from shoal_results_to_json), owned by the job */
    char error[512];
    double queue_ms, run_ms;
    /* bookkeeping */
    int refs;                   /* the waiting handler + the queue/worker */
    bool done;
    double enqueued_at;
} sh_job;

typedef struct sh_job_queue sh_job_queue;

sh_job_queue *sh_job_queue_create(sh_allocator *a, shoal_runtime_t rt, int workers, int depth);
/* Stops taking jobs, lets the workers finish what is queued, joins them, frees. */
void sh_job_queue_destroy(sh_job_queue *q);

sh_job *sh_job_new(sh_job_queue *q);
/* Queues the job; SHOAL_ERR_BUSY when full (the job stays the caller's). */
int sh_job_submit(sh_job_queue *q, sh_job *job);
/* Waits until done or timeout; returns true when done. */
bool sh_job_wait(sh_job_queue *q, sh_job *job, int timeout_ms);
/* Drops the caller's reference (the worker drops its own). */
void sh_job_release(sh_job_queue *q, sh_job *job);

int sh_job_queue_depth(sh_job_queue *q);
int sh_job_queue_capacity(sh_job_queue *q);

#endif
