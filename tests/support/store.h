#ifndef TESTS_SUPPORT_STORE_H
#define TESTS_SUPPORT_STORE_H

/*
 * The local store (agent/store) for the tests of what lives in it: the
 * cache, the outbox, the payment journal. Each test keeps its store in a
 * directory of its own (pos_test_mkdtemp, tests/support/fs.h). Failures
 * fail the running cmocka test.
 */

#include <stdint.h>

#include "agent/store/outbox.h"
#include "agent/store/store.h"

/* Opens the store in dir with a map of map_size bytes. */
void pos_test_store_open(pos_store_t *st, const char *dir, uint64_t map_size);

/*
 * A cmocka fixture for the tests of one module in the store, given to
 * cmocka as each test's initial state: a fresh directory /tmp/<name>-XXXXXX,
 * then open_all() (which opens the store in dir, and the module, at their
 * default sizes); after the test, close_all() and the directory removed.
 */
typedef struct pos_test_store_fixture {
    const char *name;
    void (*open_all)(void);
    void (*close_all)(void);
    char dir[64];
} pos_test_store_fixture_t;

int pos_test_store_setup(void **state);
int pos_test_store_teardown(void **state);

/*
 * Fills the store under ob with payment outcomes of 4,000 bytes, which
 * nothing may drop or evict, until an append fails: that must be -ENOSPC,
 * within 1,000 appends (a map of a few MiB at most).
 */
void pos_test_store_fill(pos_outbox_t *ob);

#endif /* TESTS_SUPPORT_STORE_H */
