/* TFLite models from files: plain .tflite files and members of MediaPipe `.task` bundles,
 * which are zip archives (read with libzip, so no inflate code lives here). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>

#include "import/tflite_import.h"

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && strncmp(s + n - k, suffix, k) == 0;
}

bool sh_tflite_is_path(const char *path)
{
    if (!path)
        return false;
    const char *hash = strstr(path, ".task#");
    size_t n = strlen(path);
    return hash != NULL || ends_with(path, n, ".tflite") || ends_with(path, n, ".task");
}

static int read_whole_file(sh_allocator *a, const char *path, void **buf, size_t *len, sh_err *err)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sh_errf(err, errno == ENOENT ? SHOAL_ERR_NOT_FOUND : SHOAL_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return sh_errf(err, SHOAL_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > SH_TFLITE_MAX_FILE_BYTES) {
        fclose(f);
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "%s: %lld bytes is more than shoal reads", path,
                       (long long)st.st_size);
    }
    size_t n = (size_t)st.st_size;
    void *b = sh_alloc(a, n ? n : 1);
    if (!b) {
        fclose(f);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory for %zu bytes", path, n);
    }
    if (fread(b, 1, n, f) != n) {
        fclose(f);
        sh_free(a, b);
        return sh_errf(err, SHOAL_ERR_IO, "%s: short read", path);
    }
    fclose(f);
    *buf = b;
    *len = n;
    return 0;
}

/* Reads one member of an open archive; `label` names the bundle in messages. */
static int read_member(sh_allocator *a, zip_t *z, const char *label, const char *member, void **buf, size_t *len,
                       sh_err *err)
{
    zip_int64_t n = zip_get_num_entries(z, 0), idx = -1;
    char names[256] = "";
    size_t used = 0;
    int tflites = 0;
    for (zip_int64_t i = 0; i < n; i++) {
        const char *nm = zip_get_name(z, (zip_uint64_t)i, 0);
        if (!nm)
            continue;
        size_t k = strlen(nm);
        if (used + k + 3 < sizeof names)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", nm);
        if (member ? strcmp(nm, member) == 0 : ends_with(nm, k, ".tflite")) {
            tflites++;
            idx = i;
        }
    }
    if (idx < 0 || (!member && tflites != 1))
        return sh_errf(err, SHOAL_ERR_NOT_FOUND, "%s: %s (the bundle holds: %s)", label,
                       member ? "no such member" : "no single .tflite member; name one as bundle.task#member",
                       used ? names : "nothing");
    zip_stat_t st;
    if (zip_stat_index(z, (zip_uint64_t)idx, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: member %lld has no readable size", label, (long long)idx);
    if (st.size > SH_TFLITE_MAX_FILE_BYTES)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "%s: member of %llu bytes is more than shoal reads", label,
                       (unsigned long long)st.size);
    size_t size = (size_t)st.size;
    void *b = sh_alloc(a, size ? size : 1);
    if (!b)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory for %zu bytes", label, size);
    zip_file_t *f = zip_fopen_index(z, (zip_uint64_t)idx, 0);
    zip_int64_t got = f ? zip_fread(f, b, size) : -1;
    /* one more byte must not come: the declared size is what a hostile archive could lie about */
    char extra;
    zip_int64_t more = f && got == (zip_int64_t)size ? zip_fread(f, &extra, 1) : 0;
    const char *why = f ? zip_file_strerror(f) : zip_strerror(z);
    int rc = 0;
    if (!f || got != (zip_int64_t)size || more != 0)
        rc = sh_errf(err, SHOAL_ERR_PARSE, "%s: member '%s' cannot be read: %s", label, zip_get_name(z, (zip_uint64_t)idx, 0),
                     why);
    if (f)
        zip_fclose(f);
    if (rc) {
        sh_free(a, b);
        return rc;
    }
    *buf = b;
    *len = size;
    return 0;
}

int sh_task_read_member_buffer(sh_allocator *a, const void *zip, size_t zip_len, const char *member, void **buf,
                               size_t *len, sh_err *err)
{
    *buf = NULL;
    *len = 0;
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(zip, zip_len, 0, &ze);
    zip_t *z = src ? zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze) : NULL;
    if (!z) {
        int rc = sh_errf(err, SHOAL_ERR_PARSE, "task bundle: not a readable zip archive: %s", zip_error_strerror(&ze));
        if (src)
            zip_source_free(src);
        zip_error_fini(&ze);
        return rc;
    }
    zip_error_fini(&ze);
    int rc = read_member(a, z, "task bundle", member, buf, len, err);
    zip_discard(z);
    return rc;
}

int sh_task_read_member(sh_allocator *a, const char *path, const char *member, void **buf, size_t *len, sh_err *err)
{
    void *zb;
    size_t zl;
    int rc = read_whole_file(a, path, &zb, &zl, err);
    if (rc)
        return rc;
    rc = sh_task_read_member_buffer(a, zb, zl, member, buf, len, err);
    sh_free(a, zb);
    if (rc)
        sh_err_prefix(err, rc, "%s: ", path);
    return rc;
}

int sh_tflite_load_file(sh_allocator *a, const char *path, sh_graph **out, sh_err *err)
{
    *out = NULL;
    char bundle[4096];
    const char *member = NULL, *hash = strstr(path, ".task#");
    void *buf;
    size_t len;
    int rc;
    size_t n = strlen(path);
    if (hash || ends_with(path, n, ".task")) {
        size_t bl = hash ? (size_t)(hash - path) + 5 : n;
        if (bl >= sizeof bundle)
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "model path of %zu bytes is too long", n);
        memcpy(bundle, path, bl);
        bundle[bl] = '\0';
        member = hash ? hash + 6 : NULL;
        rc = sh_task_read_member(a, bundle, member, &buf, &len, err);
    } else {
        rc = read_whole_file(a, path, &buf, &len, err);
    }
    if (rc)
        return rc;
    rc = sh_tflite_load_buffer(a, buf, len, path, out, err);
    sh_free(a, buf);
    return rc;
}
