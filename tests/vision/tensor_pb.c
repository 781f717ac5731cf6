#include "tensor_pb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int varint(const uint8_t *d, size_t n, size_t *pos, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *pos < n; shift += 7) {
        uint8_t b = d[(*pos)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

int test_tensor_read(const char *path, test_tensor *t, char *why)
{
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, 256, "%s: cannot open", path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc((size_t)len + 1);
    size_t n = fread(d, 1, (size_t)len, f);
    fclose(f);
    const uint8_t *raw = NULL;
    size_t raw_len = 0;
    float *fdata = NULL;
    size_t fcount = 0, pos = 0;
    int dtype = 0, rc = 0;
    while (pos < n && rc == 0) {
        uint64_t key, v;
        if (varint(d, n, &pos, &key)) { rc = -1; break; }
        int field = (int)(key >> 3), wt = (int)(key & 7);
        if (wt == 0) {
            if (varint(d, n, &pos, &v)) { rc = -1; break; }
            if (field == 1 && t->ndim < 8)
                t->dims[t->ndim++] = (int64_t)v;
            else if (field == 2)
                dtype = (int)v;
        } else if (wt == 2) {
            if (varint(d, n, &pos, &v) || v > n - pos) { rc = -1; break; }
            const uint8_t *p = d + pos;
            if (field == 9) {
                raw = p;
                raw_len = (size_t)v;
            } else if (field == 1) { /* packed dims */
                size_t q = 0;
                while (q < v && t->ndim < 8) {
                    uint64_t dv;
                    size_t qq = pos + q;
                    if (varint(d, pos + (size_t)v, &qq, &dv)) { rc = -1; break; }
                    q = qq - pos;
                    t->dims[t->ndim++] = (int64_t)dv;
                }
            } else if (field == 4) { /* packed float_data */
                fcount = (size_t)v / 4;
                fdata = malloc(fcount * 4 + 4);
                memcpy(fdata, p, fcount * 4);
            }
            pos += (size_t)v;
        } else if (wt == 5) {
            pos += 4;
        } else if (wt == 1) {
            pos += 8;
        } else {
            rc = -1;
        }
    }
    if (rc == 0 && dtype != 1) {
        snprintf(why, 256, "%s: data_type %d is not FLOAT", path, dtype);
        rc = -1;
    }
    size_t count = 1;
    for (int i = 0; i < t->ndim; i++)
        count *= (size_t)t->dims[i];
    if (rc == 0 && raw) {
        if (raw_len != count * 4) {
            snprintf(why, 256, "%s: raw_data has %zu bytes, dims give %zu floats", path, raw_len, count);
            rc = -1;
        } else {
            t->data = malloc(raw_len + 4);
            memcpy(t->data, raw, raw_len);
        }
    } else if (rc == 0 && fdata && fcount == count) {
        t->data = fdata;
        fdata = NULL;
    } else if (rc == 0) {
        snprintf(why, 256, "%s: no float payload matching the dims", path);
        rc = -1;
    } else {
        snprintf(why, 256, "%s: malformed protobuf", path);
    }
    free(fdata);
    free(d);
    t->count = count;
    return rc;
}
