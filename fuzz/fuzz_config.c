/* libFuzzer entry for the YAML config parser: any byte string must load or fail with a
 * message, never crash, hang or leak. A loaded config is also put through the calls the
 * runtime makes next (tier picking, lookups), since they walk what the parser built.
 * Run: build-fuzz/fuzz/fuzz_config -max_total_time=1800 CORPUS_DIR fuzz/corpus/fuzz_config */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "runtime/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sh_allocator *a = sh_allocator_create();
    if (!a)
        return 0;
    /* A config is a few KiB; a hostile one (anchors, long flow sequences) must not reach the
     * fuzzer's RSS limit before the allocator's. */
    sh_allocator_set_limit(a, (size_t)64 << 20);
    sh_config *cfg = NULL;
    sh_err err;
    err.msg[0] = '\0';
    int rc = sh_config_load_string(a, (const char *)data, size, "fuzz.yaml", "/base", &cfg, &err);
    if (rc == 0) {
        if (!cfg)
            abort();
        /* Each tier, then auto against two device sizes and an unknown one: every override path runs. */
        for (int t = 0; t < 4; t++) {
            cfg->hardware.tier = (sh_tier)t;
            sh_config_pick_tier(cfg, (uint64_t)4 << 30);
        }
        cfg->hardware.tier = SH_TIER_AUTO;
        sh_config_pick_tier(cfg, 0);
        sh_config_pick_tier(cfg, (uint64_t)80 << 30);
        sh_config_find_model(cfg, "blind_road");
        sh_config_find_mode(cfg, "navigation");
        sh_config_destroy(cfg);
    } else if (cfg || err.msg[0] == '\0') {
        abort(); /* a failure must leave nothing behind and say why */
    }
    if (sh_allocator_stats(a).in_use != 0)
        abort();
    sh_allocator_destroy(a);
    return 0;
}
