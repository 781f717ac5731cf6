/* The weight store: every packed weight on a device exactly once.
 *
 * Two phases per model, like the planner's measure-then-commit:
 *   register  packs each constant the program needs (backend->pack_weight), hashes the packed
 *             bytes (XXH3-128) and maps the tensor to an entry; an entry with the same hash and
 *             length is reused only after a byte comparison, so sharing is proven, never
 *             guessed from a model "type". With the host cache on, the packed bytes are kept in
 *             host memory (backend->host_alloc: pinned on CUDA), charged to SH_MEM_HOST_CACHE.
 *   load      puts the model's entries on the device: an entry already there just gains a
 *             reference; otherwise its bytes come from the host cache (an upload, no file parse
 *             and no repack) or, when not cached, are packed again from the program.
 * unload drops the model's device references; an entry leaves the device when no resident
 * model uses it, so weights shared with another resident model survive an eviction.
 * forget also drops the registration and with it the host-cache copies nobody else needs.
 *
 * Device memory comes from an sh_device_pool (first-fit over a few large buffers, each
 * charged to the budget as SH_MEM_WEIGHTS before buffer_alloc) rather than one buffer per
 * tensor. Model ids are 0..max_models-1, the same ids the budget and residency use.
 *
 *   sh_weight_store_register(ws, id, prog, &err);        // host: pack, hash, dedup, cache
 *   sh_weight_store_load(ws, id, prog, weight_ptrs, &err); // device: upload what is missing
 *   ...sh_plan_bind(plan, prog, arena, weight_ptrs, ...)...
 *   sh_weight_store_unload(ws, id);                       // eviction: shared entries stay
 *
 * Thread-safe: one mutex around every call (packing included), except prepack, which touches
 * no store state: several models pack at once, then register in a fixed order so entries and
 * dedup choices do not depend on which finished first.
 *
 *   sh_weight_store_prepack(ws, prog, &pk, &err);                 // any thread, in parallel
 *   sh_weight_store_register_prepacked(ws, id, prog, pk, &err);   // in model order; frees pk */
#ifndef SHOAL_MEMORY_WEIGHTS_H
#define SHOAL_MEMORY_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>

#include "backends/backend.h"
#include "memory/budget.h"

typedef struct sh_weight_store sh_weight_store;
typedef struct sh_weight_prepack sh_weight_prepack;   /* one program's packed weights and hashes */

typedef struct sh_weight_store_params {
    sh_allocator *alloc;      /* host bookkeeping (and cache copies when host_alloc is NULL) */
    sh_backend backend;       /* copied; must outlive the store */
    sh_budget *budget;        /* must outlive the store */
    size_t alignment;         /* device alignment of each weight; 0 = the backend's */
    size_t chunk_bytes;       /* device pool chunk; 0 = 16 MiB */
    bool host_cache;          /* keep packed bytes on the host for fast re-admission */
    /* The backend computes on host memory (CPU): a cached weight becomes resident as the
     * cached bytes themselves, charged to the weights budget as an upload would be, instead
     * of a second copy. Re-admission is then a rebind (no copy) and the resident set costs
     * no memory beyond the cache. Only with host_cache and a backend without host_alloc. */
    bool host_is_device;
    int max_models;
    /* Threads one prepack may use (0 or 1: the caller's alone); used for programs whose
     * weights are large enough to repay them (a full-size YOLO packs 144 MB). */
    int pack_threads;
} sh_weight_store_params;

typedef struct sh_weight_store_stats {
    size_t device_bytes;        /* unique weight bytes on the device (aligned) */
    size_t device_ref_bytes;    /* what resident models would take without sharing */
    size_t shared_saved_bytes;  /* device_ref_bytes - device_bytes */
    size_t host_cache_bytes;
    size_t pool_reserved_bytes; /* device buffers held by the pool (>= device_bytes, less cached bytes used in place) */
    int n_entries, n_device_entries;
    unsigned long n_packs, n_uploads, n_dedup_hits, n_hash_collisions;
} sh_weight_store_stats;

typedef struct sh_weight_model_stats {
    bool registered, resident;
    size_t bytes;          /* all of its weights, aligned, counted once per distinct entry */
    size_t unique_bytes;   /* entries no other registered model uses */
    size_t shared_bytes;   /* entries another registered model uses too */
} sh_weight_model_stats;

int sh_weight_store_create(const sh_weight_store_params *params, sh_weight_store **out, sh_err *err);
/* Frees everything, resident or not. Accepts NULL. */
void sh_weight_store_destroy(sh_weight_store *ws);

/* Host phase (see above). Idempotent for a registered model. On failure nothing changed. */
int sh_weight_store_register(sh_weight_store *ws, int model, const sh_program *p, sh_err *err);
/* The packing half of register (backend->pack_weight and hashing) for program p, outside the
 * lock: callable for several programs at once (pack_weight must allow that). With the host
 * cache on, the packed bytes are kept for the cache, and `kept` (may be NULL) is told of each
 * tensor t as soon as its packed bytes are: registration no longer needs its source bytes.
 * Otherwise only the hashes are kept. *out is freed by register_prepacked or
 * sh_weight_prepack_destroy. */
typedef void (*sh_weight_kept_fn)(void *user, int t);
int sh_weight_store_prepack(sh_weight_store *ws, const sh_program *p, sh_weight_kept_fn kept, void *user,
                            sh_weight_prepack **out, sh_err *err);
/* register with pk's packs (same program): the same entries, dedup and cache choices as
 * register. Frees pk, success or not. */
int sh_weight_store_register_prepacked(sh_weight_store *ws, int model, const sh_program *p, sh_weight_prepack *pk,
                                       sh_err *err);
void sh_weight_prepack_destroy(sh_weight_store *ws, sh_weight_prepack *pk);   /* accepts NULL */
/* Device phase; registers first if needed. weight_ptrs[n_tensors] receives the device pointer
 * of each weight (NULL for other tensors). p may be NULL only when every entry of the model is
 * in the host cache or on the device. SHOAL_ERR_BUDGET / NO_MEMORY leave the model not
 * resident and the device as it was. Loading a resident model only refills weight_ptrs. */
int sh_weight_store_load(sh_weight_store *ws, int model, const sh_program *p, void **weight_ptrs, sh_err *err);
void sh_weight_store_unload(sh_weight_store *ws, int model);   /* no-op when not resident */
void sh_weight_store_forget(sh_weight_store *ws, int model);   /* unload + drop registration */

/* Device bytes (aligned) loading `model` would add now: its entries not on the device.
 * SIZE_MAX when the model is not registered. */
size_t sh_weight_store_bytes_to_load(sh_weight_store *ws, int model);
/* Device bytes (aligned) of the union of the entries of the registered models with set[i]
 * non-zero (set has max_models flags): what those models need together. */
size_t sh_weight_store_set_bytes(sh_weight_store *ws, const unsigned char *set);

void sh_weight_store_get_stats(sh_weight_store *ws, sh_weight_store_stats *out);
void sh_weight_store_model_stats(sh_weight_store *ws, int model, sh_weight_model_stats *out);

#endif
