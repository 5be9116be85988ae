/*
 * Fuzz target: DLE EOT status parsing. The input is read as pairs
 * (n selector, status byte). Invariants: a byte is accepted exactly when
 * its fixed bits are right, a rejected byte never changes the status, and
 * the summary is always one of the contract's printer states.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hal/escpos.h"
#include "tests/support/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pos_printer_status_t st, before;
    static const char *const states[] = {"offline", "cover_open", "paper_out",
                                         "error",   "paper_low",  "ready"};

    pos_escpos_status_clear(&st);
    for (size_t i = 0; i + 1 < size; i += 2) {
        uint8_t n = data[i];
        uint8_t byte = data[i + 1];
        before = st;
        int rc = pos_escpos_status_parse(n, byte, &st);
        if (n < 1 || n > 4) {
            if (rc != -EINVAL) {
                abort();
            }
        } else if ((byte & 0x93) == 0x12) {
            if (rc != 0 || !(st.have & (1u << n))) {
                abort();
            }
        } else if (rc == 0) {
            abort();
        }
        if (rc != 0 && memcmp(&st, &before, sizeof(st)) != 0) {
            abort();
        }
        const char *s = pos_escpos_status_state(&st);
        int known = 0;
        for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++) {
            known |= strcmp(s, states[k]) == 0;
        }
        if (!known) {
            abort();
        }
    }
    return 0;
}
