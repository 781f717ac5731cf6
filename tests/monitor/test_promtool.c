/* The writer's sample passes `promtool check metrics` (format and lint); skipped (77) when
 * promtool is not installed (Debian package prometheus). A hand-written broken exposition
 * must fail, so a promtool that accepts anything cannot pass this test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "monitor/prom.h"
#include "prom_sample.h"

static int find_promtool(char *out, size_t len)
{
    const char *env = getenv("SHOAL_PROMTOOL");
    if (env && *env) {
        snprintf(out, len, "%s", env);
        return access(out, X_OK) == 0;
    }
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s", path ? path : "/usr/bin:/bin");
    for (char *d = strtok(dirs, ":"); d; d = strtok(NULL, ":")) {
        snprintf(out, len, "%s/promtool", d);
        if (access(out, X_OK) == 0)
            return 1;
    }
    return 0;
}

/* Runs promtool check metrics on `text`; returns its exit status, prints its output. */
static int check(const char *promtool, const char *text)
{
    char file[] = "/tmp/shoal-prom-XXXXXX";
    int fd = mkstemp(file);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n) {
        close(fd);
        unlink(file);
        return -1;
    }
    close(fd);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' check metrics < '%s' 2>&1", promtool, file);
    FILE *f = popen(cmd, "r");
    if (!f) {
        unlink(file);
        return -1;
    }
    char line[512];
    while (fgets(line, sizeof line, f))
        printf("  promtool: %s", line);
    int st = pclose(f);
    unlink(file);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(void)
{
    char promtool[1024];
    if (!find_promtool(promtool, sizeof promtool)) {
        fprintf(stderr, "skipped: promtool not found (apt-get install prometheus, or set SHOAL_PROMTOOL)\n");
        return 77;
    }
    sh_prom *p;
    sh_err err = {0};
    if (sh_prom_create(NULL, &p, &err) || write_sample(p, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int good = check(promtool, sh_prom_text(p, NULL));
    sh_prom_destroy(p);
    printf("sample: promtool exit %d\n", good);
    int bad = check(promtool, "# HELP x a\n# TYPE x counter\nx 1\n");
    printf("broken sample: promtool exit %d (want non-zero)\n", bad);
    int bad2 = check(promtool, "x{a=\"unterminated} 1\n");
    printf("malformed sample: promtool exit %d (want non-zero)\n", bad2);
    return good == 0 && bad > 0 && bad2 > 0 ? 0 : 1;
}
