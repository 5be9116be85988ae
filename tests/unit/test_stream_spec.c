/* Unit tests for the device spec parser and formatter (platform/stream.c, pure part). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "platform/stream.h"

typedef struct good_case {
    const char *spec;
    pos_stream_kind_t kind;
    const char *path; /* serial, usblp */
    uint32_t baud;    /* serial */
    const char *host; /* tcp */
    uint16_t port;    /* tcp */
    const char *canonical;
} good_case_t;

static const good_case_t good[] = {
    {"serial:/dev/ttyS1?baud=9600", POS_STREAM_SERIAL, "/dev/ttyS1", 9600, NULL, 0,
     "serial:/dev/ttyS1?baud=9600"},
    {"serial:/dev/ttyS1", POS_STREAM_SERIAL, "/dev/ttyS1", 9600, NULL, 0,
     "serial:/dev/ttyS1?baud=9600"},
    {"/dev/ttyUSB0", POS_STREAM_SERIAL, "/dev/ttyUSB0", 9600, NULL, 0,
     "serial:/dev/ttyUSB0?baud=9600"},
    {"/dev/ttyUSB0?baud=115200", POS_STREAM_SERIAL, "/dev/ttyUSB0", 115200, NULL, 0,
     "serial:/dev/ttyUSB0?baud=115200"},
    {"serial:/dev/ttyACM0?baud=1200", POS_STREAM_SERIAL, "/dev/ttyACM0", 1200, NULL, 0, NULL},
    {"serial:/dev/ttyACM0?baud=2400", POS_STREAM_SERIAL, "/dev/ttyACM0", 2400, NULL, 0, NULL},
    {"serial:/dev/ttyACM0?baud=4800", POS_STREAM_SERIAL, "/dev/ttyACM0", 4800, NULL, 0, NULL},
    {"serial:/dev/ttyACM0?baud=19200", POS_STREAM_SERIAL, "/dev/ttyACM0", 19200, NULL, 0, NULL},
    {"serial:/dev/ttyACM0?baud=38400", POS_STREAM_SERIAL, "/dev/ttyACM0", 38400, NULL, 0, NULL},
    {"serial:/dev/ttyACM0?baud=57600", POS_STREAM_SERIAL, "/dev/ttyACM0", 57600, NULL, 0, NULL},
    {"serial:/dev/ttyACM0?baud=230400", POS_STREAM_SERIAL, "/dev/ttyACM0", 230400, NULL, 0,
     NULL},
    {"serial:/dev/ttyS0?baud=009600", POS_STREAM_SERIAL, "/dev/ttyS0", 9600, NULL, 0,
     "serial:/dev/ttyS0?baud=9600"},
    /* by-id and by-path names carry ':' and other punctuation */
    {"/dev/serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0", POS_STREAM_SERIAL,
     "/dev/serial/by-path/pci-0000:00:14.0-usb-0:1:1.0-port0", 9600, NULL, 0, NULL},
    {"serial:/dev/serial/by-id/usb-FTDI_FT232R_A1B2-if00-port0?baud=38400", POS_STREAM_SERIAL,
     "/dev/serial/by-id/usb-FTDI_FT232R_A1B2-if00-port0", 38400, NULL, 0, NULL},
    {"serial:/dev/..x/./tty", POS_STREAM_SERIAL, "/dev/..x/./tty", 9600, NULL, 0, NULL},
    {"usblp:/dev/usb/lp0", POS_STREAM_USBLP, "/dev/usb/lp0", 0, NULL, 0, "usblp:/dev/usb/lp0"},
    {"usblp:/dev/usb/lp15", POS_STREAM_USBLP, "/dev/usb/lp15", 0, NULL, 0, NULL},
    {"tcp:127.0.0.1:9100", POS_STREAM_TCP, NULL, 0, "127.0.0.1", 9100, "tcp:127.0.0.1:9100"},
    {"tcp:192.0.2.10", POS_STREAM_TCP, NULL, 0, "192.0.2.10", 9100, "tcp:192.0.2.10:9100"},
    {"tcp:[::1]:9100", POS_STREAM_TCP, NULL, 0, "::1", 9100, "tcp:[::1]:9100"},
    {"tcp:[2001:db8::7]", POS_STREAM_TCP, NULL, 0, "2001:db8::7", 9100, "tcp:[2001:db8::7]:9100"},
    {"tcp:[::ffff:10.0.0.1]:1", POS_STREAM_TCP, NULL, 0, "::ffff:10.0.0.1", 1, NULL},
    {"tcp:printer.local:9101", POS_STREAM_TCP, NULL, 0, "printer.local", 9101, NULL},
    {"tcp:localhost:65535", POS_STREAM_TCP, NULL, 0, "localhost", 65535, NULL},
    {"tcp:epson-tm-t88:1", POS_STREAM_TCP, NULL, 0, "epson-tm-t88", 1, NULL},
    {"tcp:1printer", POS_STREAM_TCP, NULL, 0, "1printer", 9100, NULL},
    {"tcp:10.0.0.1:00080", POS_STREAM_TCP, NULL, 0, "10.0.0.1", 80, "tcp:10.0.0.1:80"},
};

typedef struct bad_case {
    const char *spec;
    const char *why; /* a substring of the error text */
} bad_case_t;

static const bad_case_t bad[] = {
    {"", "empty"},
    {"ttyS1", "absolute path"},
    {"COM1:", "unknown transport 'COM1'"},
    {"SERIAL:/dev/ttyS1", "unknown transport"},
    {"lpt:/dev/lp0", "unknown transport 'lpt'"},
    {"serial:", "missing device path"},
    {"serial:?baud=9600", "missing device path"},
    {"serial:dev/ttyS1", "absolute"},
    {"serial:./ttyS1", "absolute"},
    {"serial:/dev/../etc/shadow", "'..'"},
    {"serial:/..", "'..'"},
    {"serial:/dev/tty/..", "'..'"},
    {"/dev/../dev/ttyS0", "'..'"},
    {"serial:/dev/", "end with '/'"},
    {"serial:/", "end with '/'"},
    {"serial:/dev/tty S1", "space"},
    {"serial:/dev/tty\tS1", "control"},
    {"serial:/dev/tty\xc3\xa9", "non-ASCII"},
    {"serial:/dev/ttyS1?", "empty option list"},
    {"serial:/dev/ttyS1?baud=9601", "not supported"},
    {"serial:/dev/ttyS1?baud=300", "not supported"},
    {"serial:/dev/ttyS1?baud=460800", "not supported"},
    {"serial:/dev/ttyS1?baud=0", "not supported"},
    {"serial:/dev/ttyS1?baud=", "not a number"},
    {"serial:/dev/ttyS1?baud=-9600", "not a number"},
    {"serial:/dev/ttyS1?baud=+9600", "not a number"},
    {"serial:/dev/ttyS1?baud=9600 ", "not a number"},
    {"serial:/dev/ttyS1?baud=0x2580", "not a number"},
    {"serial:/dev/ttyS1?baud=99999999999", "not a number"},
    {"serial:/dev/ttyS1?baud", "not key=value"},
    {"serial:/dev/ttyS1?Baud=9600", "unknown option 'Baud'"},
    {"serial:/dev/ttyS1?parity=none", "unknown option 'parity'"},
    {"serial:/dev/ttyS1?baud=9600&baud=19200", "twice"},
    {"serial:/dev/ttyS1?baud=9600&", "empty option"},
    {"serial:/dev/ttyS1?&baud=9600", "empty option"},
    {"serial:/dev/ttyS1?baud=9600&&x=1", "empty option"},
    {"serial:/dev/ttyS1?baud=9600?baud=9600", "not a number"},
    {"usblp:", "missing device path"},
    {"usblp:lp0", "absolute"},
    {"usblp:/dev/usb/lp0?baud=9600", "no options"},
    {"usblp:/dev/usb/../lp0", "'..'"},
    {"tcp:", "missing host"},
    {"tcp::9100", "missing host"},
    {"tcp:127.0.0.1:", "missing port"},
    {"tcp:127.0.0.1:0", "bad port"},
    {"tcp:127.0.0.1:65536", "bad port"},
    {"tcp:127.0.0.1:123456", "bad port"},
    {"tcp:127.0.0.1:-1", "bad port"},
    {"tcp:127.0.0.1:91a", "bad port"},
    {"tcp:127.0.0.1:9100/", "bad port"},
    {"tcp:999.1.1.1:9100", "bad IPv4"},
    {"tcp:10.1:9100", "bad IPv4"},
    {"tcp:1.2.3.4.5", "bad IPv4"},
    {"tcp:127.0.0.01", "bad IPv4"},
    {"tcp:::1", "brackets"},
    {"tcp:::1:9100", "brackets"},
    {"tcp:[::1", "missing ']'"},
    {"tcp:[]:9100", "bad IPv6"},
    {"tcp:[::g]:9100", "bad IPv6"},
    {"tcp:[fe80::1%eth0]:9100", "bad IPv6"},
    {"tcp:[127.0.0.1]:9100", "bad IPv6"},
    {"tcp:[::1]9100", "expected ':port'"},
    {"tcp:[::1]:", "missing port"},
    {"tcp:-printer:9100", "bad host name"},
    {"tcp:printer-:9100", "bad host name"},
    {"tcp:print_er:9100", "bad host name"},
    {"tcp:printer..local", "bad host name"},
    {"tcp:printer.local.", "bad host name"},
    {"tcp:.printer", "bad host name"},
    {"tcp:host/path:9100", "bad host name"},
    {"tcp:user@host:9100", "bad host name"},
    {"tcp:host name", "bad host name"},
};

static void test_accepted_forms(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const good_case_t *g = &good[i];
        pos_stream_spec_t sp;
        char err[128] = "x";
        char canon[512];

        if (pos_stream_spec_parse(g->spec, &sp, err, sizeof(err)) != 0) {
            fail_msg("refused \"%s\": %s", g->spec, err);
        }
        assert_string_equal(err, "");
        assert_int_equal(sp.kind, g->kind);
        if (g->path != NULL) {
            assert_string_equal(sp.path, g->path);
            assert_string_equal(sp.host, "");
            assert_int_equal(sp.port, 0);
        }
        assert_int_equal(sp.baud, g->baud);
        if (g->host != NULL) {
            assert_string_equal(sp.host, g->host);
            assert_int_equal(sp.port, g->port);
            assert_string_equal(sp.path, "");
        }
        int n = pos_stream_spec_format(&sp, canon, sizeof(canon));
        assert_true(n > 0 && (size_t)n == strlen(canon));
        if (g->canonical != NULL) {
            assert_string_equal(canon, g->canonical);
        }
        /* The canonical form parses back to the same spec. */
        pos_stream_spec_t back;
        assert_int_equal(pos_stream_spec_parse(canon, &back, err, sizeof(err)), 0);
        assert_memory_equal(&back, &sp, sizeof(sp));
    }
}

static void test_refused_forms(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const bad_case_t *b = &bad[i];
        pos_stream_spec_t sp, zero;
        char err[160] = "";

        memset(&sp, 0x5a, sizeof(sp));
        memset(&zero, 0, sizeof(zero));
        if (pos_stream_spec_parse(b->spec, &sp, err, sizeof(err)) != -EINVAL) {
            fail_msg("accepted \"%s\"", b->spec);
        }
        if (strstr(err, b->why) == NULL) {
            fail_msg("\"%s\": error \"%s\" does not mention \"%s\"", b->spec, err, b->why);
        }
        assert_null(strchr(err, '\n'));
        for (const char *p = err; *p != '\0'; p++) {
            assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
        }
        assert_memory_equal(&sp, &zero, sizeof(sp));
    }
}

static void test_null_and_limits(void **state)
{
    (void)state;
    pos_stream_spec_t sp;
    char err[128];
    char path[POS_STREAM_PATH_MAX + 16];
    char spec[sizeof(path) + 32];

    assert_int_equal(pos_stream_spec_parse(NULL, &sp, err, sizeof(err)), -EINVAL);
    assert_int_equal(pos_stream_spec_parse("tcp:", &sp, NULL, 0), -EINVAL);
    assert_int_equal(pos_stream_spec_parse("tcp:1.2.3.4", &sp, NULL, 0), 0);

    /* Exactly 200 bytes of path: accepted; 201: refused. */
    memset(path, 'a', sizeof(path));
    path[0] = '/';
    path[POS_STREAM_PATH_MAX] = '\0';
    snprintf(spec, sizeof(spec), "serial:%s?baud=19200", path);
    assert_int_equal(pos_stream_spec_parse(spec, &sp, err, sizeof(err)), 0);
    assert_int_equal(strlen(sp.path), POS_STREAM_PATH_MAX);
    assert_int_equal(sp.baud, 19200);
    path[POS_STREAM_PATH_MAX] = 'a';
    path[POS_STREAM_PATH_MAX + 1] = '\0';
    snprintf(spec, sizeof(spec), "usblp:%s", path);
    assert_int_equal(pos_stream_spec_parse(spec, &sp, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "longer than 200"));

    /* A 253-byte host name is fine, 254 is not; a 64-byte label is not. */
    char host[300], tspec[sizeof(host) + 16];
    memset(host, 'a', sizeof(host));
    for (size_t i = 63; i < 253; i += 64) {
        host[i] = '.';
    }
    host[253] = '\0';
    snprintf(tspec, sizeof(tspec), "tcp:%s:9100", host);
    assert_int_equal(pos_stream_spec_parse(tspec, &sp, err, sizeof(err)), 0);
    assert_int_equal(strlen(sp.host), 253);
    host[253] = 'a';
    host[254] = '\0';
    snprintf(tspec, sizeof(tspec), "tcp:%s:9100", host);
    assert_int_equal(pos_stream_spec_parse(tspec, &sp, err, sizeof(err)), -EINVAL);
    memset(host, 'b', 64);
    host[64] = '\0';
    snprintf(tspec, sizeof(tspec), "tcp:%s", host);
    assert_int_equal(pos_stream_spec_parse(tspec, &sp, err, sizeof(err)), -EINVAL);
    host[63] = '\0';
    snprintf(tspec, sizeof(tspec), "tcp:%s", host);
    assert_int_equal(pos_stream_spec_parse(tspec, &sp, err, sizeof(err)), 0);
}

static void test_error_truncation(void **state)
{
    (void)state;
    pos_stream_spec_t sp;
    char err[8];

    memset(err, 'x', sizeof(err));
    assert_int_equal(pos_stream_spec_parse("serial:/dev/x?baud=7", &sp, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    assert_memory_equal(err, "serial:", 7);

    /* A long or hostile value is cut and cleaned in the message. */
    char long_err[256];
    assert_int_equal(pos_stream_spec_parse("nothing-like-a-transport-name-"
                                           "at-all-really-no-no-no:x",
                                           &sp, long_err, sizeof(long_err)),
                     -EINVAL);
    assert_non_null(strstr(long_err, "...'"));
    assert_int_equal(pos_stream_spec_parse("serial:/dev/x?ba\x1bud=1", &sp, long_err,
                                           sizeof(long_err)),
                     -EINVAL);
    assert_non_null(strstr(long_err, "'ba?ud'"));
}

static void test_parse_kind(void **state)
{
    (void)state;
    pos_stream_spec_t sp;
    char err[128];

    /* What the HAL hands over after its own "escpos-serial:" prefix. */
    assert_int_equal(pos_stream_spec_parse_kind(POS_STREAM_SERIAL, "/dev/ttyUSB0?baud=19200", &sp,
                                                err, sizeof(err)),
                     0);
    assert_int_equal(sp.kind, POS_STREAM_SERIAL);
    assert_string_equal(sp.path, "/dev/ttyUSB0");
    assert_int_equal(sp.baud, 19200);

    assert_int_equal(
        pos_stream_spec_parse_kind(POS_STREAM_TCP, "[::1]:9101", &sp, err, sizeof(err)), 0);
    assert_int_equal(sp.kind, POS_STREAM_TCP);
    assert_string_equal(sp.host, "::1");
    assert_int_equal(sp.port, 9101);

    assert_int_equal(
        pos_stream_spec_parse_kind(POS_STREAM_USBLP, "/dev/usb/lp1", &sp, err, sizeof(err)), 0);
    assert_int_equal(sp.kind, POS_STREAM_USBLP);

    /* The prefix is not parsed a second time. */
    assert_int_equal(pos_stream_spec_parse_kind(POS_STREAM_SERIAL, "serial:/dev/ttyS0", &sp, err,
                                                sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "absolute"));
    assert_int_equal(
        pos_stream_spec_parse_kind(POS_STREAM_NONE, "/dev/ttyS0", &sp, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "unknown transport kind"));
    assert_int_equal(pos_stream_spec_parse_kind(POS_STREAM_TCP, NULL, &sp, err, sizeof(err)),
                     -EINVAL);
}

static void test_format(void **state)
{
    (void)state;
    pos_stream_spec_t sp;
    char small[8];

    memset(&sp, 0, sizeof(sp));
    assert_int_equal(pos_stream_spec_format(&sp, small, sizeof(small)), -EINVAL);
    assert_int_equal(pos_stream_spec_parse("tcp:[2001:db8::1]:9100", &sp, NULL, 0), 0);
    /* snprintf semantics: the needed length, truncated output. */
    assert_int_equal(pos_stream_spec_format(&sp, NULL, 0), (int)strlen("tcp:[2001:db8::1]:9100"));
    assert_int_equal(pos_stream_spec_format(&sp, small, sizeof(small)),
                     (int)strlen("tcp:[2001:db8::1]:9100"));
    assert_string_equal(small, "tcp:[20");
}

static void test_baud_table(void **state)
{
    (void)state;
    const uint32_t yes[] = {1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400};
    const uint32_t no[] = {0, 50, 300, 600, 1800, 14400, 28800, 76800, 460800, 921600};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        assert_true(pos_stream_baud_supported(yes[i]));
    }
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        assert_false(pos_stream_baud_supported(no[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_forms),  cmocka_unit_test(test_refused_forms),
        cmocka_unit_test(test_null_and_limits), cmocka_unit_test(test_error_truncation),
        cmocka_unit_test(test_parse_kind),      cmocka_unit_test(test_format),
        cmocka_unit_test(test_baud_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
