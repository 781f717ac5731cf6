#include "server/jobs.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

struct sh_job_queue {
    sh_allocator *alloc;
    pthread_mutex_t lock;
    pthread_cond_t has_work;
    pthread_condattr_t mono;    /* waits use CLOCK_MONOTONIC: a clock step must not cut a timeout */
    sh_job **ring;
    int cap, head, count;
    int running;
    uint64_t completed, abandoned, client_gone;
    size_t host_limit, host_in_use, host_peak;   /* under lock */
    uint64_t host_refused;
    bool stopping;
    int n_workers;
    pthread_t *workers;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The frame and its charge go together. */
static void job_free_frame(sh_job_queue *q, sh_job *job)
{
    shoal_image_free(&job->frame);
    if (job->frame_charge) {
        sh_job_queue_uncharge(q, job->frame_charge);
        job->frame_charge = 0;
    }
}

static void job_done_with_rt(sh_job *job)
{
    if (job->done_with_rt) {
        job->done_with_rt(job->done_with_rt_user);
        job->done_with_rt = NULL;
    }
}

static void job_free(sh_job_queue *q, sh_job *job)
{
    job_free_frame(q, job);
    job_done_with_rt(job);
    if (job->owns_video)
        shoal_video_destroy(job->video);
    shoal_free_string(job->json);
    pthread_cond_destroy(&job->done_cv);
    sh_free(q->alloc, job);
}

static void run_job(sh_job_queue *q, sh_job *job)
{
    double t0 = now_ms();
    job->queue_ms = t0 - job->enqueued_at;
    shoal_results_t res = NULL;
    int rc = job->is_model ? shoal_runtime_run_model(job->rt, job->target, &job->frame, &res)
                           : shoal_runtime_run_mode_video(job->rt, job->target, &job->frame, job->video, &res);
    job->status = rc;
    if (rc == SHOAL_OK) {
        job->json = shoal_results_to_json(res);
        if (!job->json) {
            job->status = SHOAL_ERR_NO_MEMORY;
            snprintf(job->error, sizeof job->error, "out of memory writing results");
        }
    } else {
        /* The last error is per thread: this worker's own, read right after its failure. */
        snprintf(job->error, sizeof job->error, "%s", shoal_runtime_last_error(job->rt));
    }
    shoal_results_destroy(res);
    /* The frame is not needed any more; free it (and its charge) now rather than when the
     * handler is done, and let a runtime swap waiting for this job go on. */
    job_free_frame(q, job);
    job_done_with_rt(job);
    job->run_ms = now_ms() - t0;
}

static void *worker_main(void *arg)
{
    sh_job_queue *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->count && !q->stopping)
            pthread_cond_wait(&q->has_work, &q->lock);
        if (!q->count && q->stopping)
            break;
        sh_job *job = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        if (job->refs == 1) {   /* the requester gave up: nobody reads the result */
            q->abandoned++;
            job->refs = 0;
            pthread_mutex_unlock(&q->lock);
            job_free(q, job);
            pthread_mutex_lock(&q->lock);
            continue;
        }
        q->running++;
        job->ran_beside_others = q->running > 1;
        pthread_mutex_unlock(&q->lock);
        run_job(q, job);
        pthread_mutex_lock(&q->lock);
        job->ran_beside_others |= q->running > 1;
        q->running--;
        q->completed++;
        job->done = true;
        pthread_cond_signal(&job->done_cv);
        if (--job->refs == 0) {
            pthread_mutex_unlock(&q->lock);
            job_free(q, job);
            pthread_mutex_lock(&q->lock);
        }
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

sh_job_queue *sh_job_queue_create(sh_allocator *a, int workers, int depth, size_t host_limit)
{
    if (workers < 1)
        return NULL;
    sh_job_queue *q = sh_calloc(a, 1, sizeof *q);
    if (!q)
        return NULL;
    q->alloc = a;
    q->host_limit = host_limit;
    q->cap = depth > 0 ? depth : 1;
    q->ring = sh_calloc(a, (size_t)q->cap, sizeof *q->ring);
    q->workers = sh_calloc(a, (size_t)workers, sizeof *q->workers);
    if (!q->ring || !q->workers) {
        sh_free(a, q->ring);
        sh_free(a, q->workers);
        sh_free(a, q);
        return NULL;
    }
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->has_work, NULL);
    pthread_condattr_init(&q->mono);
    pthread_condattr_setclock(&q->mono, CLOCK_MONOTONIC);
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&q->workers[i], NULL, worker_main, q) != 0)
            break;
        q->n_workers++;
    }
    if (q->n_workers < workers) {   /* all or nothing: a partial pool would misstate capacity */
        sh_job_queue_destroy(q);
        return NULL;
    }
    return q;
}

void sh_job_queue_destroy(sh_job_queue *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->stopping = true;
    pthread_cond_broadcast(&q->has_work);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->n_workers; i++)
        pthread_join(q->workers[i], NULL);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->has_work);
    pthread_condattr_destroy(&q->mono);
    sh_free(q->alloc, q->ring);
    sh_free(q->alloc, q->workers);
    sh_free(q->alloc, q);
}

sh_job *sh_job_new(sh_job_queue *q)
{
    sh_job *job = sh_calloc(q->alloc, 1, sizeof *job);
    if (!job)
        return NULL;
    if (pthread_cond_init(&job->done_cv, &q->mono) != 0) {
        sh_free(q->alloc, job);
        return NULL;
    }
    job->refs = 1;
    return job;
}

int sh_job_submit(sh_job_queue *q, sh_job *job)
{
    pthread_mutex_lock(&q->lock);
    if (q->stopping || q->count == q->cap) {
        int rc = q->stopping ? SHOAL_ERR_STATE : SHOAL_ERR_BUSY;
        pthread_mutex_unlock(&q->lock);
        return rc;
    }
    job->refs++;
    job->enqueued_at = now_ms();
    q->ring[(q->head + q->count) % q->cap] = job;
    q->count++;
    pthread_cond_signal(&q->has_work);
    pthread_mutex_unlock(&q->lock);
    return SHOAL_OK;
}

bool sh_job_wait(sh_job_queue *q, sh_job *job, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&q->lock);
    while (!job->done) {
        if (pthread_cond_timedwait(&job->done_cv, &q->lock, &until) != 0)
            break;
    }
    bool done = job->done;
    pthread_mutex_unlock(&q->lock);
    return done;
}

bool sh_job_cancel(sh_job_queue *q, sh_job *job, bool client_left)
{
    pthread_mutex_lock(&q->lock);
    int at = -1;
    for (int i = 0; i < q->count && at < 0; i++)
        if (q->ring[(q->head + i) % q->cap] == job)
            at = i;
    if (at >= 0) {
        for (int i = at; i + 1 < q->count; i++)
            q->ring[(q->head + i) % q->cap] = q->ring[(q->head + i + 1) % q->cap];
        q->count--;
        job->refs--;   /* the queue's reference; the caller still holds its own */
        if (client_left)
            q->client_gone++;
        else
            q->abandoned++;
    }
    pthread_mutex_unlock(&q->lock);
    return at >= 0;
}

bool sh_job_queue_charge(sh_job_queue *q, size_t bytes)
{
    pthread_mutex_lock(&q->lock);
    bool ok = bytes <= q->host_limit && q->host_in_use <= q->host_limit - bytes;
    if (ok) {
        q->host_in_use += bytes;
        if (q->host_in_use > q->host_peak)
            q->host_peak = q->host_in_use;
    } else {
        q->host_refused++;
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

void sh_job_queue_uncharge(sh_job_queue *q, size_t bytes)
{
    pthread_mutex_lock(&q->lock);
    q->host_in_use = bytes <= q->host_in_use ? q->host_in_use - bytes : 0;
    pthread_mutex_unlock(&q->lock);
}

void sh_job_release(sh_job_queue *q, sh_job *job)
{
    if (!job)
        return;
    pthread_mutex_lock(&q->lock);
    int left = --job->refs;
    pthread_mutex_unlock(&q->lock);
    if (left == 0)
        job_free(q, job);
}

bool sh_job_queue_has_room(sh_job_queue *q)
{
    pthread_mutex_lock(&q->lock);
    bool room = !q->stopping && q->count < q->cap;
    pthread_mutex_unlock(&q->lock);
    return room;
}

void sh_job_queue_get_stats(sh_job_queue *q, sh_job_queue_stats *out)
{
    pthread_mutex_lock(&q->lock);
    out->waiting = q->count;
    out->running = q->running;
    out->capacity = q->cap;
    out->workers = q->n_workers;
    out->completed = q->completed;
    out->abandoned = q->abandoned;
    out->client_gone = q->client_gone;
    out->host_limit = q->host_limit;
    out->host_in_use = q->host_in_use;
    out->host_peak = q->host_peak;
    out->host_refused = q->host_refused;
    pthread_mutex_unlock(&q->lock);
}
