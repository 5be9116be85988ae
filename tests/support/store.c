#include "tests/support/store.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "tests/support/fs.h"

void pos_test_store_open(pos_store_t *st, const char *dir, uint64_t map_size)
{
    pos_store_config_t sc = {.path = dir, .map_size = map_size};
    assert_int_equal(pos_store_open(st, &sc), 0);
}

int pos_test_store_setup(void **state)
{
    pos_test_store_fixture_t *fx = *state;

    assert_int_equal(pos_test_mkdtemp(fx->dir, sizeof(fx->dir), fx->name), 0);
    fx->open_all();
    return 0;
}

int pos_test_store_teardown(void **state)
{
    pos_test_store_fixture_t *fx = *state;

    fx->close_all();
    pos_test_rm_tree(fx->dir);
    return 0;
}

void pos_test_store_fill(pos_outbox_t *ob)
{
    static char payload[4000];
    memset(payload, 'p', sizeof(payload));
    pos_outbox_entry_t e = {.kind = POS_OUTBOX_PUBLISH,
                            .is_payment = true,
                            .channel = "ch",
                            .channel_len = 2,
                            .payload = payload,
                            .payload_len = sizeof(payload)};
    uint64_t id;
    int rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) {
        rc = pos_outbox_append(ob, &e, &id);
    }
    assert_int_equal(rc, -ENOSPC);
}
