#ifndef TESTS_SUPPORT_FUZZ_H
#define TESTS_SUPPORT_FUZZ_H

/*
 * What the fuzz targets (tests/fuzz/fuzz_*.c) share: the entry point that
 * libFuzzer and the replay driver call, the check that turns a broken
 * property into a crash the fuzzer reports, and the hiredis reader loop
 * for targets whose input is what a server sends.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <hiredis/hiredis.h>

/* The target: called with each input; returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property of the code under test: abort() (a finding) when it fails. */
#define POS_FUZZ_CHECK(cond)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/*
 * Feeds data to a fresh hiredis reader and calls fn(reply, arg) on each
 * reply it builds, freeing it after, until the input runs out or is a
 * protocol error (what a connection would be dropped for: not a finding).
 */
static inline void pos_fuzz_replies(const uint8_t *data, size_t size,
                                    void (*fn)(const redisReply *reply, void *arg), void *arg)
{
    redisReader *rd = redisReaderCreate();
    void *reply;

    if (rd == NULL) {
        return;
    }
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply != NULL) {
            fn(reply, arg);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(rd);
}

#endif /* TESTS_SUPPORT_FUZZ_H */
