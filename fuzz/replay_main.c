/* replay_<target> PATH...: feeds every file (directories: every regular file in them, in
 * name order) to the target's LLVMFuzzerTestOneInput, once each, without libFuzzer. Linked
 * into the normal build by tests/fuzz/ so the committed corpora run in ctest: a target
 * aborts on any broken contract (leak, missing message), a crash is a crash. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional, as under libFuzzer: a target that sets something up once (a server) defines it. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = sh_alloc(NULL, cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            fprintf(stderr, "replay: out of memory reading %s\n", path);
            return -1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        uint8_t *bigger = sh_realloc(NULL, buf, cap * 2);
        if (!bigger)
            sh_free(NULL, buf);
        buf = bigger;
        cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        sh_free(NULL, buf);
        fprintf(stderr, "replay: cannot read %s\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, n);
    sh_free(NULL, buf);
    return 0;
}

static int replay_dir(const char *dir, size_t *count)
{
    struct dirent **names = NULL;
    /* alphasort is strcoll, which is strcmp in the C locale we never leave: a fixed order */
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: cannot list %s\n", dir);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        if (rc == 0 && names[i]->d_name[0] != '.') {
            if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name) >= sizeof path) {
                fprintf(stderr, "replay: path too long in %s\n", dir);
                rc = -1;
            } else if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                rc = replay_file(path);
                ++*count;
            }
        }
        free(names[i]);   /* scandir's own malloc */
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s does not exist\n", argv[i]);
            return 1;
        }
        int rc = S_ISDIR(st.st_mode) ? replay_dir(argv[i], &count) : (count++, replay_file(argv[i]));
        if (rc)
            return 1;
    }
    printf("replayed %zu inputs\n", count);
    return count ? 0 : 1;
}
